"""WorkQueue: dedup, one worker per key, re-add while processing, delays, rate limiting."""

import pytest
import trio
import trio.testing

from tinykube.controllers.workqueue import WorkQueue


async def test_dedups_waiting_keys():
    q: WorkQueue[str] = WorkQueue()
    for key in ["a", "b", "a", "a", "c", "b"]:
        q.add(key)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]


async def test_key_is_not_handed_out_while_processing_and_comes_back_after_done():
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")  # changed while being processed
    q.add("a")
    assert len(q) == 0  # not handed to a second worker
    with trio.move_on_after(0.05) as scope:
        await q.get()
    assert scope.cancelled_caught
    q.done("a")
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    assert len(q) == 0


async def test_done_without_readd_does_not_requeue():
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    await q.get()
    q.done("a")
    assert len(q) == 0 and not q.processing


async def test_concurrent_workers_never_share_a_key():
    q: WorkQueue[int] = WorkQueue()
    active: set[int] = set()
    handled: list[int] = []

    async def worker():
        while True:
            key = await q.get()
            assert key not in active
            active.add(key)
            await trio.sleep(0.001)
            active.discard(key)
            handled.append(key)
            q.done(key)

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(worker)
        for round_ in range(20):
            for key in range(5):
                q.add(key)
            await trio.sleep(0.0005 * (round_ % 3))
        while len(q) or q.processing:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert set(handled) == set(range(5))


async def test_add_after_delays_and_keeps_the_earliest(autojump_clock):
    q: WorkQueue[str] = WorkQueue()
    start = trio.current_time()
    q.add_after("a", 10)
    q.add_after("a", 5)
    q.add_after("a", 20)
    assert q.delayed == 1
    assert await q.get() == "a"
    assert trio.current_time() - start == pytest.approx(5)
    q.done("a")
    with trio.move_on_after(60) as scope:
        await q.get()  # the superseded 10 s and 20 s entries must not fire
    assert scope.cancelled_caught


async def test_add_wakes_a_worker_waiting_for_a_delayed_key(autojump_clock):
    q: WorkQueue[str] = WorkQueue()
    q.add_after("later", 100)
    got: list[str] = []

    async def worker():
        got.append(await q.get())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker)
        await trio.sleep(1)
        q.add("now")
    assert got == ["now"]
    assert trio.current_time() < 100


async def test_rate_limited_backoff_is_exponential_capped_and_forgettable(autojump_clock):
    q: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=1.0)
    delays = [q.next_delay("k") for _ in range(10)]
    assert delays[:4] == [0.01, 0.02, 0.04, 0.08]
    assert max(delays) == 1.0 and delays[-1] == 1.0
    q.forget("k")
    assert q.next_delay("k") == 0.01
    q.forget("k")

    start = trio.current_time()
    q.add_rate_limited("k")
    q.add_rate_limited("k")  # second failure before the first retry ran: earliest wins
    assert await q.get() == "k"
    assert trio.current_time() - start == pytest.approx(0.01)
    assert q.failures("k") == 2


async def test_delay_while_processing_requeues_after_done(autojump_clock):
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    await q.get()
    q.add_after("a", 1)
    await trio.sleep(2)
    q._promote_due()  # due while processing: marked dirty, not handed out
    assert len(q) == 0
    q.done("a")
    assert await q.get() == "a"


async def test_shutdown_wakes_waiting_workers():
    q: WorkQueue[str] = WorkQueue()
    async with trio.open_nursery() as nursery:
        async def waiter():
            with pytest.raises(trio.EndOfChannel):
                await q.get()
        nursery.start_soon(waiter)
        await trio.sleep(0.01)
        q.shutdown()
    q.add("ignored")
    assert len(q) == 0


async def test_add_coalesced_sends_the_first_event_at_once_and_absorbs_the_burst(
        autojump_clock):
    q: WorkQueue[str] = WorkQueue()
    start = trio.current_time()
    for _ in range(100):
        q.add_coalesced("k", 0.01)
    assert len(q) == 1 and q.delayed == 0  # leading edge: at once, the rest deduplicated
    assert await q.get() == "k"
    assert trio.current_time() == start
    for _ in range(100):
        q.add_coalesced("k", 0.01)  # while processing: one more pass, after the window
    q.done("k")
    assert await q.get() == "k"
    assert trio.current_time() - start == pytest.approx(0.01)
    q.done("k")
    q.add_coalesced("k", 0.01)  # right after a reconcile: waits out the window
    assert len(q) == 0 and q.delayed == 1
    q.add("k")
    q.add_coalesced("k", 0.01)  # already queued: nothing more
    assert len(q) == 1


async def test_pace_stretches_the_coalescing_window_of_an_expensive_key(autojump_clock):
    q: WorkQueue[str] = WorkQueue()
    q.pace("big", 0.3)
    start = trio.current_time()
    q.add_coalesced("big", 0.01)
    assert await q.get() == "big"
    assert trio.current_time() - start == pytest.approx(0.3)
    q.done("big")
    q.pace("big", 0)
    q.add("big")  # explicit adds are never paced
    assert await q.get() == "big"
    assert trio.current_time() - start == pytest.approx(0.3)


async def test_an_event_comes_before_a_long_pending_delay(autojump_clock):
    from tinykube.controllers.workqueue import WorkQueue

    queue = WorkQueue()
    queue.add_after("k", 600)  # e.g. a progress-deadline check
    queue.add_coalesced("k", 0.05)
    start = trio.current_time()
    assert await queue.get() == "k"
    assert trio.current_time() - start < 1


@pytest.mark.parametrize("delay", [-5.0, float("nan"), 0.0])
async def test_a_key_readded_at_once_never_starves_the_event_loop(delay):
    """Regression: a worker that re-adds its key with a due-now (or negative) delay and never
    awaits otherwise used to spin inside get() without a checkpoint: nothing else ran."""
    q: WorkQueue[str] = WorkQueue()
    q.add("k")
    other_ran = trio.Event()
    worker_looping = trio.Event()

    async def worker() -> None:
        while not other_ran.is_set():
            key = await q.get()
            worker_looping.set()
            q.add_after(key, delay)
            q.done(key)

    async def other() -> None:
        await worker_looping.wait()  # runnable from now on: the worker must yield to it
        other_ran.set()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker)
            nursery.start_soon(other)
    assert other_ran.is_set()


async def test_huge_and_infinite_delays_are_capped(autojump_clock):
    q: WorkQueue[str] = WorkQueue()
    q.add_after("k", float("inf"))
    q.add_after("j", 2.0 ** 70)
    start = trio.current_time()
    assert {await q.get(), await q.get()} == {"k", "j"}
    assert trio.current_time() - start <= 24 * 3600
