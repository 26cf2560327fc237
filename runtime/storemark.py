"""The run-dir store mark (runtime/storeguard.py), kept ahead of the pod records.

Before a pod worker writes its first record, the mark must name a store resourceVersion at
least as high as the pod's own; otherwise a store restored from a copy older than the pod
could lose it unnoticed. The kubelet wrote the mark on trio's thread for
every new pod (a file replace: ~10% of trio's thread in a 300-pod scale-out). Here one
write, off trio's thread, serves every worker that asked while it ran (a group commit): it
writes the store's version as of then, which covers them all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import trio

from .storeguard import write_mark


class StoreMark:
    """`cover(v)` returns once the mark on disk is at least `v`."""

    def __init__(self, run_dir: Path, root: Path, current: Callable[[], int]) -> None:
        self._run_dir = run_dir
        self._root = root
        self._current = current  # the store's resourceVersion now
        self._written = -1
        self._lock = trio.Lock()  # FIFO: one write at a time; the waiters behind it reuse it

    def write_now(self) -> None:
        """Blocking, at start-up: the store's version as it is."""
        version = self._current()
        write_mark(self._run_dir, self._root, version)
        self._written = version

    async def cover(self, version: int) -> None:
        if version <= self._written:
            return
        async with self._lock:
            if version <= self._written:
                return  # the write we queued behind covered us
            target = self._current()
            await trio.to_thread.run_sync(write_mark, self._run_dir, self._root, target)
            self._written = max(self._written, target)
