"""A test daemon's life: started, then always torn down (every object deleted, the daemon
stopped, `tinykube reset --purge`, the leak check), even when the run is interrupted.

Used by the pytest plugin's `tinykube` fixture and tinykube's own `daemon` fixture alike.
"""

from __future__ import annotations

import atexit
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .daemon import Daemon


class Teardown:
    """Runs `daemon.cleanup()` once: from the fixture's finalizer or, if the process is
    leaving without it (an exception escaping pytest, a fixture never finalized), from
    atexit."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._lock = threading.Lock()
        self._done = False

    def __call__(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        self.daemon.cleanup()

    def at_exit(self) -> None:
        try:
            self()
        except BaseException as e:  # noqa: BLE001 - the interpreter is exiting: say, don't raise
            print(f"tinykube: cleanup at exit failed: {e!r}")


def _terminate_as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def running(daemon: Daemon) -> Iterator[Daemon]:
    """Start `daemon`; on leaving (normally, by an exception, Ctrl-C or SIGTERM) tear it down.
    A teardown that finds a leak raises AssertionError."""
    teardown = Teardown(daemon)
    atexit.register(teardown.at_exit)
    # SIGTERM (a CI timeout, `kill`) would end the process without finalizers or atexit: turn
    # it into an interrupt, as Ctrl-C is, while the daemon is up (only the main thread may).
    old_term = None
    if threading.current_thread() is threading.main_thread() \
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        old_term = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        daemon.start()
        yield daemon
    finally:
        try:
            teardown()
        finally:
            atexit.unregister(teardown.at_exit)
            if old_term is not None:
                signal.signal(signal.SIGTERM, old_term)
