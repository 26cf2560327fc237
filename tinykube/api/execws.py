"""`kubectl exec` over WebSocket (`v5.channel.k8s.io`, and `v4` which frames the same way).

The command comes in the query string (`command=sh&command=-c&command=...`, `container`,
`stdin`, `stdout`, `stderr`, `tty`). Every binary message starts with a channel byte:
0 stdin, 1 stdout, 2 stderr, 3 error (the final `Status`, carrying the exit code), 4 resize
(ignored: there are no terminals; with `tty=true` stderr goes out on stdout), 255 close (v5:
the client closed the channel in the next byte, e.g. stdin). The WebSocket protocol itself is
hypercorn's (wsproto).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import trio

from tinykube.model.errors import ApiError, BadRequest

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255

Start = Callable[[str, str | None, list[str]], Awaitable[trio.Process]]


def exit_status(code: int, command: list[str]) -> dict:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"{command}, exit code {code}",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def _truthy(values: list[str] | None) -> bool:
    return bool(values and values[-1].lower() in ("1", "true"))


async def serve(scope: dict[str, Any], receive: Any, send: Any, start: Start) -> None:
    """Serve one exec WebSocket; `start(path, container, command)` starts the process."""
    if (await receive())["type"] != "websocket.connect":
        return
    offered = [p.strip() for p in scope.get("subprotocols") or []]
    protocol = next((p for p in PROTOCOLS if p in offered), None)
    if protocol is None:
        await send({"type": "websocket.close", "code": 1002})
        return
    await send({"type": "websocket.accept", "subprotocol": protocol})
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    command = query.get("command") or []

    async def error(status: dict) -> None:
        await send({"type": "websocket.send",
                    "bytes": bytes([ERROR]) + json.dumps(status).encode()})
        await send({"type": "websocket.close", "code": 1000})

    try:
        if not command:
            raise BadRequest("you must specify at least 1 command")
        container = (query.get("container") or [None])[-1] or None
        process = await start(scope["path"], container, command)
    except ApiError as e:
        await error(e.status())
        return
    wants_stdin = _truthy(query.get("stdin"))
    # With -t the client reads one stream; the process still has pipes, not a terminal
    # (tinykube allocates no ptys), so its stderr joins stdout as a terminal would show it.
    stderr_channel = STDOUT if _truthy(query.get("tty")) else STDERR
    try:
        code = await _run(process, receive, send, wants_stdin, stderr_channel)
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
    if code is not None:
        await error(exit_status(code, command))


async def _run(process: trio.Process, receive: Any, send: Any, wants_stdin: bool,
               stderr_channel: int) -> int | None:
    """Pump the streams until the process exits (its exit code) or the client leaves (None)."""
    if not wants_stdin and process.stdin is not None:
        await process.stdin.aclose()
    result: list[int | None] = [None]

    async def pump(channel: int, pipe: Any) -> None:
        async for chunk in pipe:
            await send({"type": "websocket.send", "bytes": bytes([channel]) + chunk})

    async def from_client(cancel: trio.CancelScope) -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                cancel.cancel()
                return
            data = message.get("bytes") or (message.get("text") or "").encode()
            if not data:
                continue
            if data[0] == STDIN and process.stdin is not None and wants_stdin:
                try:
                    await process.stdin.send_all(data[1:])
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
            elif data[0] == CLOSE and data[1:2] == bytes([STDIN]) and process.stdin is not None:
                await process.stdin.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(from_client, nursery.cancel_scope)
        async with trio.open_nursery() as pumps:
            pumps.start_soon(pump, STDOUT, process.stdout)
            pumps.start_soon(pump, stderr_channel, process.stderr)
        code = await process.wait()
        result[0] = code if code >= 0 else 128 - code
        nursery.cancel_scope.cancel()
    return result[0]
