"""`tinykube`: one parser, one module per command group, one place that turns errors into
a one-line message and an exit code."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from tinykube.cli import (
    cluster_cmd,
    daemon_cmd,
    doctor,
    kubeconfig_cmd,
    objects,
    podio,
    reset_cmd,
    rollout,
)
from tinykube.cli.common import UsageError
from tinykube.client import Client, DaemonUnreachable, default_socket
from tinykube.model.errors import ApiError
from tinykube.model.kinds import UnknownKind


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinykube", description=(
        "Kubernetes' workload model (Pods, ReplicaSets, Deployments, StatefulSets) as real "
        "process pods on one Linux machine."))
    parser.add_argument("--socket", default=None,
                        help="API socket (default $TINYKUBE_SOCKET or /run/tinykube/tinykube.sock)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for module in (daemon_cmd, cluster_cmd, objects, podio, rollout, reset_cmd, kubeconfig_cmd,
                   doctor):
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` is the command of `exec` (argparse mixes it up with options).
    trailing: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, trailing = argv[:split], argv[split + 1:]
    args = parser.parse_args(argv)
    if trailing:
        if not hasattr(args, "command_argv"):
            parser.error("`--` is only used by exec")
        args.command_argv = trailing
    handler: Callable[[argparse.Namespace, Client], int] = args.handler
    client = Client(args.socket or default_socket())
    try:
        return handler(args, client) or 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tinykube get pods | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except DaemonUnreachable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ApiError as e:
        print(f"Error from server ({e.reason}): {e.message}", file=sys.stderr)
        return 1
    except (UsageError, UnknownKind) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        for warning in client.warnings:  # the server's Warning headers, as kubectl shows them
            print(f"Warning: {warning}", file=sys.stderr)
        client.close()


# `python -m tinykube.cli.main`; `python -m tinykube.cli` is tinykube/cli/__main__.py.
if __name__ == "__main__":
    sys.exit(main())
