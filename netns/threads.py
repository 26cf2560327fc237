"""The threads netlink work runs on, awaited from trio.

pyroute2 0.9's sync `IPRoute` keeps its asyncio loop and its netlink socket per thread
(thread-locals inside), so an `IPRoute` used from trio's pooled worker threads would quietly
grow one socket and loop per thread. Hence:

- `SerialThread`: one dedicated thread that owns one resource (the host's `IPRoute`) and runs
  submitted calls one at a time. Running one at a time is also the lock that serialises
  every change to host links and to the IPAM file.
- `run_on_fresh_thread`: a new thread for one call. Work inside a pod's netns goes there,
  because `setns` changes the calling thread's namespace: a thread that ends afterwards can
  never carry the pod's netns into later, unrelated work.

Both wait shielded from cancellation: a netlink change, once sent, finishes, and the caller
sees its outcome (a half-done attach is then repaired by the next attach or by the sweep).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import trio

R = TypeVar("R")
T = TypeVar("T")

_Outcome = tuple[bool, Any]  # (ok, value or exception)


async def _await_delivery(start: Callable[[Callable[[_Outcome], None]], None]) -> Any:
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()
    box: list[_Outcome] = []

    def deliver(outcome: _Outcome) -> None:
        box.append(outcome)
        token.run_sync_soon(done.set)

    start(deliver)
    with trio.CancelScope(shield=True):
        await done.wait()
    ok, value = box[0]
    if ok:
        return value
    raise value


def _capture(fn: Callable[..., Any], *args: Any) -> _Outcome:
    try:
        return True, fn(*args)
    except BaseException as exc:  # noqa: BLE001 -- the awaiting task re-raises it
        return False, exc


async def run_on_fresh_thread(fn: Callable[[], R], name: str) -> R:
    """Run `fn()` on a new daemon thread that ends with it."""

    def start(deliver: Callable[[_Outcome], None]) -> None:
        threading.Thread(target=lambda: deliver(_capture(fn)), name=name, daemon=True).start()

    result: R = await _await_delivery(start)
    return result


class SerialThread(Generic[T]):
    """A thread that creates a resource with `open_resource()` on first use and runs calls
    `fn(resource)` one at a time; `close()` ends the thread and closes the resource."""

    def __init__(
        self,
        name: str,
        open_resource: Callable[[], T],
        close_resource: Callable[[T], None],
    ) -> None:
        self._name = name
        self._open = open_resource
        self._close = close_resource
        self._queue: queue.SimpleQueue[tuple[Callable[[T], Any], Callable[[_Outcome], None]] | None]
        self._queue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    async def run(self, fn: Callable[[T], R]) -> R:
        self._ensure_started()

        def start(deliver: Callable[[_Outcome], None]) -> None:
            self._queue.put((fn, deliver))

        result: R = await _await_delivery(start)
        return result

    def close(self) -> None:
        """Stop the thread after the calls already queued (idempotent)."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        resource: T | None = None
        try:
            while (item := self._queue.get()) is not None:
                fn, deliver = item
                if resource is None:
                    opened = _capture(self._open)
                    if not opened[0]:
                        deliver(opened)
                        continue
                    resource = opened[1]
                deliver(_capture(fn, resource))
        finally:
            if resource is not None:
                self._close(resource)
