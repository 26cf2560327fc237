"""Level-triggered change notification for the proxy and the DNS server.

Both rebuild their whole view (rules, records) from the store whenever any object of the
kinds they read changes; bursts of events (a rollout) are coalesced into one rebuild. A lost
watch (`Gone`) is re-listed, which is itself a change.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from tinykube.model.errors import Gone

if TYPE_CHECKING:
    from tinykube.store import Store

log = logging.getLogger("tinykube.services")


class Changes:
    """Set by watch events, consumed by one rebuild loop."""

    def __init__(self) -> None:
        self._event = trio.Event()
        self._event.set()  # the first rebuild runs at once

    def mark(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = trio.Event()


async def watch_kind(store: Store, kind: str, changes: Changes, *,
                     task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    started = False
    while True:
        since = store.resource_version
        changes.mark()
        try:
            with store.watch(kind, since=since) as watch:
                if not started:
                    task_status.started()
                    started = True
                async for _ in watch:
                    changes.mark()
        except Gone:
            continue
        return


async def _every(seconds: float, changes: Changes) -> None:
    while True:
        await trio.sleep(seconds)
        changes.mark()


async def rebuild_on_changes(store: Store, kinds: tuple[str, ...],
                             rebuild: Callable[[], Awaitable[Any]], name: str, *,
                             retry_seconds: float = 1.0, resync_seconds: float | None = None,
                             task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                             ) -> None:
    """Watch `kinds`; after every change (and once at the start, and every `resync_seconds`
    when set) await `rebuild()`. A failed rebuild is logged once per distinct error and
    retried after `retry_seconds`."""
    changes = Changes()
    last_error = None
    async with trio.open_nursery() as nursery:
        for kind in kinds:
            await nursery.start(watch_kind, store, kind, changes)
        if resync_seconds:
            nursery.start_soon(_every, resync_seconds, changes)
        task_status.started()
        while True:
            await changes.wait()
            try:
                await rebuild()
                last_error = None
            except Exception as exc:  # noqa: BLE001 -- logged, retried: the loop must live
                if str(exc) != last_error:
                    log.error("%s: rebuild failed (retrying every %.0f s): %s", name,
                              retry_seconds, exc)
                    last_error = str(exc)
                await trio.sleep(retry_seconds)
                changes.mark()
