"""Group commit: concurrent writes share one transaction, and its fsync.

A durable commit costs an fsync (a few ms on this disk, more under load). One after another
on the trio thread, N clients writing at once get at most one write per fsync, and the whole
daemon stands still during each. Instead, a write that finds no commit under way leads: it
runs every write waiting by then as ONE transaction in a worker thread; writes that arrive
meanwhile wait for the next transaction, whose leader is the first of them to run again.
The trio thread keeps serving requests while the disk syncs. (PostgreSQL's commit_delay and
etcd's batched backend commits do the same.)

The rules the store relies on (tests/unit/test_store_group_commit.py):
- a writer is answered only after the transaction holding its write committed;
- one write failing fails only its writer: when a group's transaction fails, each of its
  writes is committed again in a transaction of its own (`commit_batch` does that);
- resourceVersions are handed out in arrival order and a group is applied to the cache and
  the watchers in that order after its commit, before the next group is committed: watchers
  see them monotonic (a failed write leaves a gap, as a failed etcd txn does);
- a key has at most one write in flight: the store waits for it (`in_flight`) and decides
  again on the fresher cache, so resourceVersion preconditions keep holding;
- a write is not cancelled half-way: its caller's cancellation takes effect after the
  commit (a queued write whose writer left would otherwise have no leader).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

Statement = tuple[str, tuple[Any, ...]]


@dataclass(eq=False)
class PendingWrite:
    key: Any
    rv: int
    statements: list[Statement]
    durable: bool
    removal: bool  # frees space: may use the disk reserve
    apply: Callable[[], None]  # into the cache and to the watchers, after the commit
    error: BaseException | None = None
    done: trio.Event = field(default_factory=trio.Event)


# Commits a batch (in a worker thread); per write the error that failed it, or None.
BatchCommitter = Callable[[list[PendingWrite]], list[BaseException | None]]


class GroupCommit:
    def __init__(self, commit_batch: BatchCommitter) -> None:
        self._commit_batch = commit_batch
        self._queue: list[PendingWrite] = []
        self._leading = False
        self._turn = trio.Event()  # set when a leader finishes: the next may lead
        self._in_flight: dict[Any, trio.Event] = {}
        # Its own thread token: commits never wait behind the runtime's thread work (pod
        # starts take the default limiter's 40), and only one runs at a time anyway.
        self._limiter = trio.CapacityLimiter(1)

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing committing: a write may commit inline, in order."""
        return not self._leading and not self._queue

    def in_flight(self, key: Any) -> trio.Event | None:
        """Set once the write in flight for `key` (if any) is settled."""
        return self._in_flight.get(key)

    async def write(self, pending: PendingWrite) -> None:
        """Commit `pending` with whatever else is waiting; raises its own error."""
        self._queue.append(pending)
        self._in_flight[pending.key] = pending.done
        with trio.CancelScope(shield=True):
            while not pending.done.is_set():
                if self._leading:
                    await self._turn.wait()
                else:
                    await self._lead()
        if pending.error is not None:
            raise pending.error

    async def _lead(self) -> None:
        self._leading = True
        batch, self._queue = self._queue, []
        try:
            try:
                errors = await trio.to_thread.run_sync(self._commit_batch, batch,
                                                       limiter=self._limiter)
            except BaseException as e:  # noqa: BLE001 - a broken commit fails every writer
                errors = [e] * len(batch)
            for pending, error in zip(batch, errors, strict=True):
                if error is None:
                    try:
                        pending.apply()
                    except BaseException as e:  # noqa: BLE001 - told to its writer
                        error = e
                pending.error = error
        finally:
            for pending in batch:
                if self._in_flight.get(pending.key) is pending.done:
                    del self._in_flight[pending.key]
                pending.done.set()
            self._leading = False
            self._turn.set()
            self._turn = trio.Event()
