"""A watch stream with Kubernetes' options: `timeoutSeconds` ends it, `allowWatchBookmarks`
adds periodic BOOKMARK events, `sendInitialEvents=true` (kubectl's watch-list, with
`resourceVersionMatch=NotOlderThan`) sends the current objects as ADDED and then a BOOKMARK
annotated `k8s.io/initial-events-end: "true"`; and events carry Tables when asked.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import trio

from tinykube.api import tables
from tinykube.model.errors import BadRequest

BOOKMARK_INTERVAL = 30.0  # seconds between periodic bookmarks (Kubernetes: about a minute)
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def _seconds(query: dict[str, str]) -> float:
    text = query.get("timeoutSeconds")
    if text in (None, ""):
        return math.inf
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"timeoutSeconds: Invalid value: {text!r}: must be an integer") from None
    if value < 0:
        raise BadRequest("timeoutSeconds: must be greater than or equal to 0")
    return float(value) if value else math.inf


class Options:
    def __init__(self, query: dict[str, str], accept: str | None) -> None:
        self.timeout = _seconds(query)
        self.bookmarks = _truthy(query.get("allowWatchBookmarks"))
        self.initial_events = _truthy(query.get("sendInitialEvents"))
        match = query.get("resourceVersionMatch") or ""
        if query.get("sendInitialEvents") not in (None, "") and match not in (
                "NotOlderThan",):
            raise BadRequest('resourceVersionMatch: Forbidden: sendInitialEvents requires '
                             'setting resourceVersionMatch to "NotOlderThan"')
        if match not in ("", "NotOlderThan", "Exact"):
            raise BadRequest(f'resourceVersionMatch: Unsupported value: "{match}": supported '
                             'values: "Exact", "NotOlderThan"')
        self.table = tables.wanted(accept)
        self.include = query.get("includeObject") or "Metadata"


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


async def stream(send: Any, watch: Any, options: Options, *, kind: str, api_version: str,
                 initial: list[dict] | None, wanted: Callable[[dict], bool],
                 current_rv: Callable[[], int]) -> None:
    """Send the watch's events as JSON lines until it ends or `timeoutSeconds` passes.
    `initial`: the objects to send first as ADDED (None: only changes)."""
    first = True

    async def emit_shared(type_: str, data: bytes) -> None:
        """An event as the store encoded it once for every watcher."""
        await send({"type": "http.response.body", "more_body": True,
                    "body": b'{"type":"' + type_.encode() + b'","object":' + data + b"}\n"})

    async def emit(type_: str, obj: dict) -> None:
        nonlocal first
        if options.table and type_ != "BOOKMARK":
            obj = tables.table(kind, [obj], {"resourceVersion":
                                             obj["metadata"].get("resourceVersion", "")},
                               include=options.include, headers=first)
            first = False
        await send({"type": "http.response.body", "more_body": True,
                    "body": json.dumps({"type": type_, "object": obj}).encode() + b"\n"})

    def bookmark(annotations: dict | None = None) -> dict:
        meta: dict[str, Any] = {"resourceVersion": str(current_rv())}
        if annotations:
            meta["annotations"] = annotations
        return {"kind": kind, "apiVersion": api_version, "metadata": meta}

    with trio.move_on_after(options.timeout), watch:
        for obj in initial or []:
            if wanted(obj):
                await emit("ADDED", obj)
        if options.initial_events:
            await emit("BOOKMARK", bookmark({INITIAL_EVENTS_END: "true"}))
        while True:
            event = None
            with trio.move_on_after(BOOKMARK_INTERVAL if options.bookmarks else math.inf):
                try:
                    # Tables are made per watcher; plain JSON is the store's, shared.
                    event = await (watch.__anext__() if options.table
                                   else watch.receive_shared())
                except StopAsyncIteration:
                    return
            if event is None:
                await emit("BOOKMARK", bookmark())
            elif not wanted(event.object):
                continue
            elif event.data and not options.table:
                await emit_shared(event.type, event.data)
            else:
                await emit(event.type, event.object)
