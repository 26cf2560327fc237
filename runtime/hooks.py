"""Container lifecycle hooks (`lifecycle.postStart` / `preStop`), run as the kubelet runs them
(pkg/kubelet/lifecycle/handlers.go):

- `exec`: the command in the container; a non-zero exit fails the hook. No timeout of its
  own: a preStop is bounded by the grace period by its caller, a postStart by nothing.
- `httpGet`: one GET from the pod's network namespace (host defaults to the pod IP); only a
  failure to get a response fails it, whatever the status code (the kubelet does not look).
- `sleep`: waits `seconds`.
- `tcpSocket`: accepted by the API for old manifests, but the kubelet has no runner for it:
  the hook fails ("invalid handler"), as Kubernetes documents.

The caller decides what a failure means (postStart: kill the container; preStop: an event,
and the stop goes on). Failure messages follow the kubelet's wording, for events.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import trio

from .probes import ProbeError, ProbeKind, ProbeSpec, ProbeTarget, connect, http_get, resolve_port
from .sandbox import SpawnError

# exec(argv, timeout) -> (exit code, output)
ExecCommand = Callable[[list[str], float], Awaitable[tuple[int, str]]]


class HookFailed(Exception):
    """The hook ran and failed; str() is the kubelet's message for the event."""


def handler_kind(handler: dict[str, Any]) -> str:
    return next((k for k in ("exec", "httpGet", "sleep", "tcpSocket")
                 if handler.get(k) is not None), "")


async def run_hook(handler: dict[str, Any], *, container: dict[str, Any], pod_ref: str,
                   target: ProbeTarget, exec_command: ExecCommand) -> None:
    """Run one handler to its end; raises HookFailed. `pod_ref`: the kubelet's
    `name_namespace(uid)`."""
    name = container.get("name")
    kind = handler_kind(handler)
    if kind == "exec":
        command = [str(a) for a in handler["exec"].get("command") or []]
        try:
            code, output = await exec_command(command, math.inf)
        except (OSError, SpawnError) as e:
            code, output, error = -1, "", str(e)
        else:
            error = f"command '{' '.join(command)}' exited with {code}: {output}"
        if code != 0:
            raise HookFailed(f"Exec lifecycle hook ([{' '.join(command)}]) for Container "
                             f"\"{name}\" in Pod \"{pod_ref}\" failed - error: {error}, "
                             f"message: {json.dumps(output)}")
        return
    if kind == "httpGet":
        body = handler["httpGet"]
        path = body.get("path") or "/"
        try:
            await _http_hook(body, container, target)
        except (OSError, h11.ProtocolError, ConnectionError, ProbeError) as e:
            raise HookFailed(f"HTTP lifecycle hook ({path}) for Container \"{name}\" in Pod "
                             f"\"{pod_ref}\" failed - error: {e}") from None
        return
    if kind == "sleep":
        await trio.sleep(max(0, int(handler["sleep"].get("seconds") or 0)))
        return
    raise HookFailed(f"Cannot run handler: invalid handler: {kind or 'none'} (tcpSocket is "
                     "deprecated and not supported as a lifecycle handler)")


async def _http_hook(body: dict[str, Any], container: dict[str, Any],
                     target: ProbeTarget) -> None:
    port = resolve_port(body.get("port", 80), container, "httpGet")
    host = body.get("host") or target.pod_ip or "127.0.0.1"
    headers = tuple((h["name"], h["value"]) for h in body.get("httpHeaders") or [])
    spec = ProbeSpec(ProbeKind.LIVENESS, "httpGet", host=host, port=port,
                     path=body.get("path") or "/", headers=headers)
    sock = await connect(target, host, port)
    with sock:
        await http_get(sock, spec, host)
