"""Kubernetes' crash-loop back-off for one container: at once, then 10 s, 20 s ... up to 300 s.

The kubelet restarts a container's first crash at once (its back-off entry does not exist
yet), then waits before each further restart, 10 s doubling each time, and forgets the history
once the container has run for 10 minutes without exiting
("Once a container has executed for 10 minutes without any problems, the kubelet resets the
restart backoff timer"). While the wait runs the container shows `CrashLoopBackOff`.

The clock is injected (a callable returning seconds) so tests drive it by hand; the pod
worker passes `trio.current_time` so trio's autojump clock works too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

INITIAL_DELAY = 10.0
MAX_DELAY = 300.0
RESET_AFTER = 600.0


@dataclass(frozen=True)
class BackoffPolicy:
    """The numbers; tests pass small ones (the pod worker takes a policy parameter)."""

    initial: float = INITIAL_DELAY
    cap: float = MAX_DELAY
    reset_after: float = RESET_AFTER


DEFAULT_POLICY = BackoffPolicy()


class CrashBackoff:
    """Restart delays of one container.

    Call `started()` when the container starts and `exited()` when it exits; `exited` returns
    how long to wait before the next start.
    """

    def __init__(self, policy: BackoffPolicy = DEFAULT_POLICY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._next_delay = 0.0
        self._started_at: float | None = None

    def started(self) -> None:
        self._started_at = self._clock()

    def exited(self) -> float:
        """The wait before the next start; doubles per crash, resets after a long clean run."""
        now = self._clock()
        if self._started_at is not None and now - self._started_at >= self.policy.reset_after:
            self._next_delay = 0.0
        delay = self._next_delay
        self._next_delay = min(delay * 2, self.policy.cap) if delay else self.policy.initial
        self._started_at = None
        return delay
