"""A reconcile that keeps failing is retried with back-off, logged once per key and error,
and never stops its worker (issue 14: "a 150-line traceback every second")."""

from __future__ import annotations

import itertools
import logging

import trio

from tinykube.controllers import base
from tinykube.controllers.workqueue import WorkQueue


async def test_failing_reconcile_is_logged_once_retried_with_backoff_and_recovers(
        autojump_clock, caplog):
    queue: WorkQueue[tuple[str, str]] = WorkQueue()
    calls: list[float] = []
    broken = {"on": True}

    async def reconcile(store, key):
        calls.append(trio.current_time())
        if key == ("default", "bad") and broken["on"]:
            raise ValueError("spec makes reconcile explode")

    logger = logging.getLogger("tinykube.controllers.test")
    caplog.set_level(logging.DEBUG, logger="tinykube.controllers.test")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(base.work, None, queue, reconcile, logger, "Thing")
        queue.add(("default", "bad"))
        await trio.sleep(120)
        failures = len(calls)
        # The worker is alive and serves other keys meanwhile.
        queue.add(("default", "good"))
        await trio.sleep(1)
        assert len(calls) == failures + 1
        broken["on"] = False
        await trio.sleep(61)  # the back-off is capped at a minute
        nursery.cancel_scope.cancel()

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "('default', 'bad')" in errors[0].getMessage() and errors[0].exc_info
    # Retried with exponential back-off: many early tries, then spaced out (not every second).
    assert 8 <= failures <= 20, failures
    gaps = [b - a for a, b in itertools.pairwise(calls[:failures])]
    assert gaps == sorted(gaps) and gaps[-1] >= 10
    assert any("succeeds again" in r.getMessage() for r in caplog.records)


async def test_a_different_error_is_logged_again(autojump_clock, caplog):
    queue: WorkQueue[str] = WorkQueue()
    errors = iter([ValueError("one"), ValueError("one"), KeyError("two"), KeyError("two")])

    async def reconcile(store, key):
        raise next(errors, RuntimeError("last"))

    logger = logging.getLogger("tinykube.controllers.test2")
    caplog.set_level(logging.INFO, logger="tinykube.controllers.test2")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(base.work, None, queue, reconcile, logger, "Thing")
        queue.add("k")
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    logged = [r.exc_info[1] for r in caplog.records if r.levelno >= logging.ERROR]
    assert [type(e).__name__ for e in logged] == ["ValueError", "KeyError", "RuntimeError"]
