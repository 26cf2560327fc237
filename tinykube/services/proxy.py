"""The service proxy: keeps tinykube's nftables table equal to what Services and their
EndpointSlices say (rules in `proxyrules`, the kernel call in `nft`).

Every change of a Service or an EndpointSlice leads to one rebuild: the whole table is
computed from the store and replaced in one transaction. `last_sync_seconds` and `syncs` are
kept for the benchmark. `remove` deletes exactly this proxy's table (`tinykube reset`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio

from . import nft
from .proxyrules import NetworkFacts, Tables, ruleset, service_ports, table_name
from .watching import rebuild_on_changes

if TYPE_CHECKING:
    from tinykube.store import Store

log = logging.getLogger("tinykube.services.proxy")

# Every so often the table is read back from the kernel and rewritten whole, so rules that
# someone else changed or flushed (a firewall reload) are repaired without a Service change.
FULL_RESYNC_SECONDS = 300.0


class ServiceProxy:
    def __init__(self, store: Store, facts: NetworkFacts,
                 on_first_sync: Callable[[], Awaitable[None]] | None = None) -> None:
        self.store = store
        self.facts = facts
        # Called once the table (with its drop-what-leaves-the-bridge rule) is in place.
        self._on_first_sync = on_first_sync
        self.table = table_name(facts.bridge)
        self._tables: Tables | None = None  # what the kernel holds after our last sync
        self.syncs = 0
        self.last_sync_seconds = 0.0
        self._last_full = time.monotonic()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        await rebuild_on_changes(self.store, ("Service", "EndpointSlice"), self.sync,
                                 "service proxy", resync_seconds=FULL_RESYNC_SECONDS,
                                 task_status=task_status)

    async def sync(self) -> None:
        started = time.perf_counter()
        ports = service_ports(self.store.list("Service"), self.store.list("EndpointSlice"))
        if time.monotonic() - self._last_full >= FULL_RESYNC_SECONDS:
            self._tables = None
        if self._tables is None:
            self._last_full = time.monotonic()
            self._tables = await trio.to_thread.run_sync(nft.existing, self.table)
        commands, after = ruleset(self.facts, ports, self._tables)
        try:
            await trio.to_thread.run_sync(nft.apply, commands)
        except nft.NftError:
            self._tables = None  # re-read what the kernel has before the next attempt
            raise
        self._tables = after
        if self.syncs == 0 and self._on_first_sync is not None:
            await self._on_first_sync()
        self.syncs += 1
        self.last_sync_seconds = time.perf_counter() - started
        log.debug("service proxy: %d service ports programmed in %.1f ms", len(ports),
                  self.last_sync_seconds * 1000)


def remove_table(bridge: str) -> bool:
    """Delete the proxy table of the daemon whose bridge is `bridge` (blocking)."""
    return nft.delete_table(table_name(bridge))
