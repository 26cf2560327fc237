"""The pod worker's state is one Phase, moved only along TRANSITIONS (runtime/podworker.py)."""

from pathlib import Path

import pytest

from tinykube.runtime.node import NodeContext
from tinykube.runtime.podworker import TRANSITIONS, Deletion, Phase, PodWorker
from tinykube.runtime.probes import NetnsSockets


def worker(**meta) -> PodWorker:
    ctx = NodeContext(store=None, root=Path("/nonexistent"), run_dir=Path("/nonexistent"),
                      network=None, cgroups=None, sockets=NetnsSockets())  # type: ignore[arg-type]
    pod = {"metadata": {"uid": "u1", "name": "p", "namespace": "default", **meta},
           "spec": {"containers": [{"name": "c", "command": ["true"]}]}}
    return PodWorker(ctx, pod)


def test_every_phase_is_reachable_and_done_is_final():
    reachable, frontier = {Phase.SETTING_UP}, [Phase.SETTING_UP]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == set(Phase)
    assert TRANSITIONS[Phase.DONE] == frozenset()


def test_the_worker_moves_only_along_the_table():
    w = worker()
    assert w.phase is Phase.SETTING_UP and not w.stopping
    w._enter(Phase.RUNNING)
    with pytest.raises(RuntimeError, match="no move from Running to SettingUp"):
        w._enter(Phase.SETTING_UP)
    w._enter(Phase.STOPPING)
    assert w.stopping
    w._enter(Phase.STOPPING)  # entering the phase one is in is a no-op
    w._enter(Phase.RELEASED)
    w._enter(Phase.DONE)
    with pytest.raises(RuntimeError):
        w._enter(Phase.RELEASED)


def test_deletion_only_rises_and_forced_means_gone():
    w = worker(deletionTimestamp="2026-01-01T00:00:00Z")  # a delete the last daemon began
    assert w.deletion is Deletion.GRACEFUL and w.deleting and not w.gone
    w.forget()
    assert w.deletion is Deletion.FORCED and w.gone
    w.observe({"metadata": {"uid": "u1", "name": "p", "deletionTimestamp": "x"}})
    assert w.deletion is Deletion.FORCED
