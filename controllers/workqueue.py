"""A deduplicating, rate-limited work queue of keys, after client-go's workqueue.

Watch events only say "look at this key again"; many events about one object collapse into
one pending key. The rules, as in client-go:

- `add(key)` while the key is already waiting does nothing (dedup).
- `get()` hands a key to exactly one worker and marks it *processing*; while it is processing,
  no other worker gets it. Adding it meanwhile marks it *dirty*, and `done(key)` puts it back
  in the queue, so the change that arrived during the reconcile is not lost.
- `add_rate_limited(key)` re-adds after a per-key exponential delay (base * 2**failures, capped)
  for reconciles that failed; `forget(key)` resets the count after a success.
- `add_after(key, seconds)` re-adds later, e.g. to re-check minReadySeconds;
  `add_coalesced(key, window)` is the watch path: one short wait absorbs a burst of events.

Delayed keys wait in a heap; `get()` sleeps until the earliest one is due or a key arrives,
so an idle queue costs no CPU. Time is trio's clock, so tests can use a mock clock. Every
`get()` yields to the event loop once, so a key that is re-added at once cannot starve it.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

import trio

K = TypeVar("K", bound=Hashable)

DEFAULT_BASE_DELAY = 0.005  # seconds; client-go's default per-item base delay
DEFAULT_MAX_DELAY = 60.0  # cap: a persistently failing key is retried at least once a minute
MAX_AFTER = 24 * 3600.0  # the longest add_after: a day (a controller re-lists long before)


class WorkQueue(Generic[K]):
    def __init__(self, *, base_delay: float = DEFAULT_BASE_DELAY,
                 max_delay: float = DEFAULT_MAX_DELAY) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._queue: deque[K] = deque()  # keys ready to hand out, in arrival order
        self._dirty: set[K] = set()  # keys that need processing (queued or re-added)
        self._processing: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []  # heap of (due time, tiebreak, key)
        self._delayed_due: dict[K, float] = {}  # earliest due time per delayed key
        self._tiebreak = itertools.count()
        self._failures: dict[K, int] = {}
        self._pace: dict[K, float] = {}
        self._last_done: dict[K, float] = {}  # when each key's last reconcile finished
        self._wakeup = trio.Event()
        self._shut_down = False

    # ---- adding ------------------------------------------------------------------------

    def add(self, key: K) -> None:
        if self._shut_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # done() re-queues it
        self._queue.append(key)
        self._wake()

    def add_after(self, key: K, seconds: float) -> None:
        # Clamp whatever arithmetic produced the delay: negative or NaN means "now", and
        # anything past the cap (or infinite) waits only the cap.
        if not seconds > 0:
            self.add(key)
            return
        seconds = min(seconds, MAX_AFTER)
        due = trio.current_time() + seconds
        # Keep only the earliest pending delay per key: a later one adds nothing.
        if self._delayed_due.get(key, float("inf")) <= due:
            return
        self._delayed_due[key] = due
        heapq.heappush(self._delayed, (due, next(self._tiebreak), key))
        self._wake()

    def add_coalesced(self, key: K, window: float) -> None:
        """Add `key` after `window` seconds unless it is already waiting to be processed.

        Watch events use this: a burst of events about one object (hundreds of pods reporting
        in) then costs one reconcile, and the short wait lets the watch task drain its backlog
        instead of alternating one event with one (possibly long) reconcile."""
        if key in self._dirty:
            return
        pace = self._pace.get(key, 0.0)
        last = self._last_done.get(key)
        if (not pace and key not in self._processing
                and (last is None or trio.current_time() - last >= window)):
            # Leading edge: the first event after a quiet spell goes at once (a pod that died
            # is replaced without waiting out the window); the rest of a burst coalesces.
            self.add(key)
            return
        # A key with a long delay pending (a progress-deadline check in 10 minutes) must still
        # come sooner for this event; add_after keeps whichever due time is earliest.
        self.add_after(key, max(window, pace))

    def pace(self, key: K, seconds: float) -> None:
        """Make `add_coalesced` wait at least `seconds` for `key` (0 clears it). Workers set
        this from how long the key's last reconcile took, so one expensive key (a ReplicaSet
        of hundreds of pods, re-listed on every pod event) cannot monopolise the one thread
        that the whole daemon shares."""
        if seconds > 0:
            self._pace[key] = seconds
        else:
            self._pace.pop(key, None)

    def add_rate_limited(self, key: K) -> None:
        self.add_after(key, self.next_delay(key))

    def next_delay(self, key: K) -> float:
        """The delay for this failure of `key` (and count it): base * 2**failures, capped."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        # Cap the exponent too, so a key failing for days cannot overflow the float.
        return min(self.base_delay * float(2 ** min(failures, 62)), self.max_delay)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    # ---- taking ------------------------------------------------------------------------

    async def get(self) -> K:
        """The next ready key; the caller must call `done(key)` when finished with it.

        Always a checkpoint, even with keys ready: a worker whose reconcile re-adds its key at
        once (and never awaits) must still let the API server and the other tasks run."""
        await trio.lowlevel.checkpoint()
        while True:
            self._promote_due()
            if self._queue:
                key = self._queue.popleft()
                self._processing.add(key)
                self._dirty.discard(key)
                return key
            if self._shut_down:
                raise trio.EndOfChannel("work queue shut down")
            wakeup = self._wakeup
            if self._delayed:
                with trio.move_on_at(self._delayed[0][0]):
                    await wakeup.wait()
            else:
                await wakeup.wait()

    def done(self, key: K) -> None:
        self._processing.discard(key)
        self._last_done[key] = trio.current_time()
        if key in self._dirty:
            self._queue.append(key)
            self._wake()

    def shutdown(self) -> None:
        """Wake every waiting worker; `get()` raises EndOfChannel once the queue is empty."""
        self._shut_down = True
        self._wake()

    # ---- introspection (tests, metrics) ------------------------------------------------

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def processing(self) -> frozenset[K]:
        return frozenset(self._processing)

    @property
    def delayed(self) -> int:
        return len(self._delayed_due)

    # ---- internals ---------------------------------------------------------------------

    def _promote_due(self) -> None:
        now = trio.current_time()
        while self._delayed and self._delayed[0][0] <= now:
            due, _, key = heapq.heappop(self._delayed)
            if self._delayed_due.get(key) != due:
                continue  # superseded by an earlier delay for the same key
            del self._delayed_due[key]
            self.add(key)

    def _wake(self) -> None:
        # Each waiter holds the Event it saw; replacing it after set() re-arms for the next wait.
        self._wakeup.set()
        self._wakeup = trio.Event()
