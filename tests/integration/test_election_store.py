"""Leader election through a Lease (tinykube/cluster/election.py) on a real Store: one of two
candidates leads; when it stops renewing, the other takes over after the lease duration, and
the Lease records the transition."""

from __future__ import annotations

import pytest
import trio

from tests.integration.storewait import eventually
from tinykube.cluster.election import LEADER_LEASE_NAME, LEADER_LEASE_NAMESPACE, LeaderElector
from tinykube.cluster.objects import StoreObjects
from tinykube.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


async def test_one_leads_and_the_other_takes_over_when_it_goes_silent(store):
    running: dict[str, int] = {"a": 0, "b": 0}

    def work(name):
        async def lead():
            running[name] += 1
            try:
                await trio.sleep_forever()
            finally:
                running[name] -= 1
        return lead

    objects = StoreObjects(store)
    a = LeaderElector(objects, "a", lease_seconds=1.0)
    b = LeaderElector(objects, "b", lease_seconds=1.0)
    async with trio.open_nursery() as outer:
        async with trio.open_nursery() as nursery_a:
            await nursery_a.start(a.run, work("a"))
            await eventually(lambda: running["a"] == 1, what="a leading")
            await outer.start(b.run, work("b"))
            await trio.sleep(2.5)  # b watches a renew for longer than the lease
            assert running == {"a": 1, "b": 0}, "two leaders at once"
            nursery_a.cancel_scope.cancel()  # a goes silent (as if killed)
        lost_at = trio.current_time()
        await eventually(lambda: running["b"] == 1, timeout=5, what="b leading")
        took = trio.current_time() - lost_at
        assert took <= 1.0 + 2 * b.retry_period + 0.5, f"takeover took {took:.1f} s"
        lease = store.get("Lease", LEADER_LEASE_NAMESPACE, LEADER_LEASE_NAME)
        assert lease["spec"]["holderIdentity"] == "b"
        assert lease["spec"]["leaseTransitions"] == 1
        outer.cancel_scope.cancel()


async def test_a_leader_that_cannot_renew_stops_leading(store):
    stopped = trio.Event()

    async def lead():
        try:
            await trio.sleep_forever()
        finally:
            stopped.set()

    elector = LeaderElector(StoreObjects(store), "a", lease_seconds=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(elector.run, lead)
        await eventually(lambda: elector.leading, what="leading")
        # Someone else takes the Lease (as after a partition): a's renewals now conflict.
        lease = store.get("Lease", LEADER_LEASE_NAMESPACE, LEADER_LEASE_NAME)
        lease["spec"]["holderIdentity"] = "intruder"
        await store.update(lease)

        async def keep_intruder():
            while True:
                current = store.get("Lease", LEADER_LEASE_NAMESPACE, LEADER_LEASE_NAME)
                current["spec"]["renewTime"] = f"x{trio.current_time()}"
                await store.update(current)
                await trio.sleep(0.1)
        nursery.start_soon(keep_intruder)
        with trio.fail_after(5):
            await stopped.wait()
        await eventually(lambda: not elector.leading, what="standing by")
        await trio.sleep(1.0)  # and it does not take the Lease back while it is renewed
        assert not elector.leading
        nursery.cancel_scope.cancel()
