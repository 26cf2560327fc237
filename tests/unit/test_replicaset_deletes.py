"""ReplicaSet scale-down deletes its victims together (as Kubernetes' manageReplicas does),
not one store round trip after another, and still tries every one when one fails."""

from __future__ import annotations

import pytest
import trio

from tinykube.controllers import replicaset
from tinykube.model.errors import NotFound


class SlowStore:
    """Deletes that each take a while; records how many were in flight at once."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.in_flight = 0
        self.most_in_flight = 0
        self.deleted: list[str] = []
        self.events: list[str] = []

    async def delete(self, kind, namespace, name, uid=None):
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await trio.sleep(1)
        self.in_flight -= 1
        if name in self.failing:
            raise RuntimeError(f"store refused {name}")
        if name == "gone":
            raise NotFound(f"pods {name} not found")
        self.deleted.append(name)

    async def record_event(self, obj, type_, reason, message, source=None):
        self.events.append(reason)


def pod(name: str) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"}}


OWNER = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
         "metadata": {"name": "rs", "namespace": "default", "uid": "rs-uid"}}


async def test_victims_are_deleted_together(autojump_clock):
    store = SlowStore(failing=set())
    started = trio.current_time()
    await replicaset._delete_pods(store, OWNER, [pod(f"p{i}") for i in range(10)] + [pod("gone")])
    assert store.most_in_flight == 11
    assert trio.current_time() - started == pytest.approx(1)  # the fake clock: one round
    assert sorted(store.deleted) == sorted(f"p{i}" for i in range(10))
    assert store.events.count("SuccessfulDelete") == 10


async def test_one_failed_delete_does_not_stop_the_others(autojump_clock):
    store = SlowStore(failing={"p3"})
    with pytest.raises(RuntimeError, match="store refused p3"):
        await replicaset._delete_pods(store, OWNER, [pod(f"p{i}") for i in range(6)])
    assert sorted(store.deleted) == ["p0", "p1", "p2", "p4", "p5"]
    assert store.events.count("FailedDelete") == 1
