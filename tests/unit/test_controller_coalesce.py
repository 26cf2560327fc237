"""Watch events to queue keys: the Deployment controller's next pass follows an event at
once (a rollout is a chain of such passes), where other controllers coalesce a burst."""

import logging

import trio
import trio.testing

from tinykube.controllers import base
from tinykube.controllers.deployment.controller import controller_spec
from tinykube.controllers.workqueue import WorkQueue
from tinykube.store import Store

LOG = logging.getLogger("test")


def deployment():
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "command": ["true"]}]}}}}


async def queued_right_after_a_pass(tmp_path, coalesce):
    """Whether an event right after a finished pass queues the key with no time passing."""
    store = Store(tmp_path / "state.db")
    queue: WorkQueue = WorkQueue()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: base.watch_kind(
                store, "Deployment", base.own_key, queue, LOG, coalesce=coalesce,
                task_status=task_status))
            obj = await store.create(deployment())
            await trio.testing.wait_all_tasks_blocked()
            key = await queue.get()
            queue.done(key)  # a pass just finished
            obj["spec"]["replicas"] = 2
            await store.update(obj)
            await trio.testing.wait_all_tasks_blocked()
            queued = len(queue) == 1
            nursery.cancel_scope.cancel()
    finally:
        store.close()
    return queued


async def test_deployment_passes_follow_their_events_at_once(tmp_path, autojump_clock):
    assert await queued_right_after_a_pass(tmp_path, controller_spec().coalesce_seconds)


async def test_other_controllers_coalesce_a_burst(tmp_path, autojump_clock):
    assert not await queued_right_after_a_pass(tmp_path, base.COALESCE_SECONDS)


async def test_a_spec_change_goes_at_once_past_the_window_and_the_pace(tmp_path, autojump_clock):
    """A ReplicaSet scaled by its Deployment (generation ahead of observedGeneration) is a
    link of a rollout's chain: queued at once, even right after an expensive pass. Its own
    status write, which changes no spec, still coalesces."""
    store = Store(tmp_path / "state.db")
    queue: WorkQueue = WorkQueue()
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "web-1", "namespace": "default"},
          "spec": deployment()["spec"]}
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: base.watch_kind(
                store, "ReplicaSet", base.own_key, queue, LOG, task_status=task_status))
            obj = await store.create(rs)
            await trio.testing.wait_all_tasks_blocked()
            key = await queue.get()
            obj["status"] = {"observedGeneration": 1, "replicas": 1}
            obj = await store.update_status(obj)  # the pass reports what it saw
            queue.pace(key, base.MAX_PACE_SECONDS)  # ... and it was an expensive one
            queue.done(key)
            await trio.testing.wait_all_tasks_blocked()
            assert len(queue) == 0  # the status write waits out the window and the pace
            obj["spec"]["replicas"] = 2
            await store.update(obj)  # generation 2, observed 1
            await trio.testing.wait_all_tasks_blocked()
            assert len(queue) == 1
            nursery.cancel_scope.cancel()
    finally:
        store.close()
