"""Commands that talk to a pod's processes: logs and exec."""

from __future__ import annotations

import argparse
import sys

from tinykube.cli.common import UsageError, add_namespace
from tinykube.client import Client, object_path
from tinykube.model.kinds import by_kind


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("logs", help="print a container's log")
    p.add_argument("pod")
    p.add_argument("-c", "--container")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-p", "--previous", action="store_true")
    p.add_argument("--tail", type=int, default=None)
    add_namespace(p)
    p.set_defaults(handler=logs)

    p = commands.add_parser("exec", help="run a command in a container")
    p.add_argument("pod")
    p.add_argument("-c", "--container")
    p.set_defaults(command_argv=[])
    p.epilog = "usage: tinykube exec POD [-c CONTAINER] -- COMMAND [ARGS...]"
    add_namespace(p)
    p.set_defaults(handler=exec_)


def _pod_name(text: str) -> str:
    kind, sep, name = text.partition("/")
    return name if sep and kind in ("pod", "pods", "po") else text


def logs(args: argparse.Namespace, client: Client) -> int:
    params: dict[str, str] = {}
    if args.container:
        params["container"] = args.container
    if args.follow:
        params["follow"] = "true"
    if args.previous:
        params["previous"] = "true"
    if args.tail is not None and args.tail >= 0:
        params["tailLines"] = str(args.tail)
    path = object_path(by_kind("Pod"), args.namespace, _pod_name(args.pod), "log")
    out = sys.stdout.buffer
    for chunk in client.stream("GET", path, params=params):
        out.write(chunk)
        out.flush()
    return 0


def exec_(args: argparse.Namespace, client: Client) -> int:
    command = args.command_argv
    if not command:
        raise UsageError("you must specify at least one command for the container (after --)")
    body: dict = {"command": command}
    if args.container:
        body["container"] = args.container
    path = object_path(by_kind("Pod"), args.namespace, _pod_name(args.pod), "exec")
    code = 1
    for message in client.stream_lines("POST", path, body=body):
        if "exitCode" in message:
            code = int(message["exitCode"])
            continue
        target = sys.stdout if message.get("stream") == "stdout" else sys.stderr
        target.write(message.get("data", ""))
        target.flush()
    return code


