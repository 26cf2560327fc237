"""A crash between any two steps of pod creation leaves nothing behind after the next start.

`TINYKUBE_CRASH_AT=<step>` (read by runtime.node at start-up) makes the daemon `_exit`
right after that step of a pod's set-up: cgroup created, sandbox started
(before the pause is recorded), veth attached, container spawned (before the process is
recorded). One pod is stored before the daemon starts, so its worker starts at start-up and
the daemon dies before it even serves. Then either
- the pod is removed from the store while the daemon is down (as if deleted just before the
  crash): the restarted daemon, without the fault, removes every trace of it (cgroup,
  processes, veth, IP allocation, pod dir, record) with a log line; or
- the pod stays: it ends up Running with exactly one pause and one container (nothing the
  crashed daemon started runs beside them), one veth and one address.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.integration.daemon import Daemon, wait_for
from tinykube.model import defaults, validation
from tinykube.model.manifests import load_manifests
from tinykube.netns.ipamlog import recorded_allocations
from tinykube.runtime.cgroups import detect
from tinykube.runtime.node import CRASH_STEPS, TEARDOWN_CRASH_STEP
from tinykube.runtime.syscalls import proc_start_time
from tinykube.runtime.warmpool import is_pool_uid
from tinykube.store import Store

pytestmark = pytest.mark.root

POD = """
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, command: [sleep, infinity]}]
"""


@pytest.fixture
def crashing(tmp_path):
    d = Daemon(tmp_path)
    try:
        yield d
    finally:
        if d.process is None or d.process.poll() is not None:
            d.start()  # cleanup deletes through a running daemon, then resets
        d.cleanup()


def remove_from_store(root: Path, name: str) -> None:
    async def remove() -> None:
        store = Store(root / "state.db")
        try:
            await store.delete("Pod", "default", name, grace_period=0)
        finally:
            store.close()
    trio.run(remove)


def pod_uids(root: Path) -> dict[str, str]:
    async def read() -> dict[str, str]:
        store = Store(root / "state.db")
        try:
            return {p["metadata"]["name"]: p["metadata"]["uid"] for p in store.list("Pod")}
        finally:
            store.close()
    return trio.run(read)


def recorded_pids(run_dir: Path, uid: str) -> list[tuple[int, int]]:
    """(pid, start time) of every process the pod's record names."""
    try:
        record = json.loads((run_dir / "pods" / f"{uid}.json").read_text())
    except FileNotFoundError:
        return []
    procs = [record.get("pause")] + [c.get("process") for c in record["containers"].values()]
    return [(p["pid"], p["start_time"]) for p in procs if p]


def alive(pid: int, start: int) -> bool:
    try:
        return proc_start_time(pid) == start and "Z" not in _state(pid)
    except (ProcessLookupError, FileNotFoundError):
        return False


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def processes_in_cgroup_of(uid: str) -> list[int]:
    """Every live process whose cgroup (any hierarchy) names the pod: finds a pause or
    container even if our cgroup directories were never made or are already gone."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"pod-{uid}" in (entry / "cgroup").read_text() and _state(int(entry.name)) != "Z":
                found.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def allocations(root: Path) -> dict[str, str]:
    """Pods' addresses (not warm sandboxes', runtime/warmpool.py)."""
    found = recorded_allocations(root / "network")
    return {uid: ip for uid, ip in found.items() if not is_pool_uid(uid)}


def links() -> str:
    return subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                          check=True).stdout


def seed_store(root: Path, manifest: str) -> None:
    """Create the pods as the API server would (defaults, validation), before any daemon
    runs: the daemon then starts both workers at once, so when one reaches the crash step the
    other can be at any earlier one."""
    async def create() -> None:
        store = Store(root / "state.db")
        try:
            for obj in load_manifests(manifest):
                obj = defaults.apply_defaults(obj)
                assert not validation.validate(obj)
                await store.create(obj)
        finally:
            store.close()
    root.mkdir(parents=True, exist_ok=True)
    trio.run(create)


def crash(daemon: Daemon, step: str) -> None:
    """Run the daemon with the fault armed until it crashes (before it even serves, as a rule:
    workers of stored pods start during start-up)."""
    with open(daemon.log_path, "ab") as log:
        daemon.process = subprocess.Popen(
            [sys.executable, "-m", "tinykube.cli.main", *daemon.args()],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TINYKUBE_CRASH_AT": step})
    code = daemon.process.wait(timeout=60)
    assert code == 137, f"the daemon did not crash at {step} (exit {code})"
    assert f"TINYKUBE_CRASH_AT={step}" in daemon.log_path.read_text()


@pytest.mark.parametrize("step", CRASH_STEPS)
def test_crash_then_pod_removed_leaves_no_orphan(crashing: Daemon, step: str):
    seed_store(crashing.root, POD)
    crash(crashing, step)
    uid = pod_uids(crashing.root)["p"]
    pids = recorded_pids(crashing.run_dir, uid)
    remove_from_store(crashing.root, "p")  # as if deleted just before the crash
    crashing.start()

    # The API answers before the node has re-adopted (or swept) what it finds: wait for it.
    cgroups = detect(None, subtree=crashing.cgroup_subtree)

    def leftovers() -> list[str]:
        found = []
        if uid in cgroups.pod_uids():
            found.append("cgroup")
        if processes_in_cgroup_of(uid):
            found.append("processes in its cgroup")
        if [p for p in pids if alive(*p)]:
            found.append("a recorded process")
        if f"tkv{uid[:8]}" in links():
            found.append("veth")
        if uid in allocations(crashing.root):
            found.append("IP allocation")
        for path in (crashing.root / "pods" / uid, crashing.run_dir / "pods" / f"{uid}.json",
                     crashing.run_dir / "pods" / uid):
            if path.exists():
                found.append(str(path))
        return found

    try:
        wait_for(lambda: not leftovers(), timeout=20, what="the start-up sweep")
    except AssertionError:
        raise AssertionError(f"left behind after the start-up sweep: {leftovers()}") from None
    assert f"removing leftovers of pod {uid}" in crashing.log_path.read_text()


@pytest.mark.parametrize("step", CRASH_STEPS)
def test_crash_then_restart_runs_the_pod_exactly_once(crashing: Daemon, step: str):
    seed_store(crashing.root, POD)
    crash(crashing, step)
    crashing.start()
    pod = crashing.wait_running("p", timeout=60)
    uid = pod["metadata"]["uid"]
    # One pause, one shim, one app: nothing started before the crash runs beside them.
    wait_for(lambda: len(processes_in_cgroup_of(uid)) == 3, timeout=10,
             what="the pod's cgroup holding exactly pause + shim + app")
    assert links().count(f"tkv{uid[:8]}") == 1
    assert allocations(crashing.root) == {uid: pod["status"]["podIP"]}
    recorded = recorded_pids(crashing.run_dir, uid)
    assert len(recorded) == 2 and all(alive(*p) for p in recorded)


def test_crash_mid_teardown_then_restart_finishes_the_deletion(crashing: Daemon):
    # The teardown no longer rewrites the record (pause = none) before removing it: a crash
    # between leaves a record naming a pause that has exited. The next daemon must still
    # remove the pod and every trace of it, and start nothing for it.
    with open(crashing.log_path, "ab") as log:
        crashing.process = subprocess.Popen(
            [sys.executable, "-m", "tinykube.cli.main", *crashing.args()], stdout=log,
            stderr=subprocess.STDOUT, env={**os.environ, "TINYKUBE_CRASH_AT": TEARDOWN_CRASH_STEP})
    wait_for(crashing._up, timeout=30, what="the daemon with the teardown fault armed")
    crashing.apply(POD)
    uid = crashing.wait_running("p", timeout=60)["metadata"]["uid"]
    pids = recorded_pids(crashing.run_dir, uid)
    assert len(pids) == 2
    crashing.cli("delete", "pod", "p", "--wait=false")
    assert crashing.process.wait(timeout=60) == 137
    assert (crashing.run_dir / "pods" / f"{uid}.json").exists()  # the crash came before it
    crashing.start()
    wait_for(lambda: not crashing.client.list("Pod", "default"), timeout=30,
             what="the pod removed by the restarted daemon")
    cgroups = detect(None, subtree=crashing.cgroup_subtree)
    assert uid not in cgroups.pod_uids()
    assert not processes_in_cgroup_of(uid)
    assert not [p for p in pids if alive(*p)]
    assert f"tkv{uid[:8]}" not in links()
    assert uid not in allocations(crashing.root)
    for path in (crashing.root / "pods" / uid, crashing.run_dir / "pods" / f"{uid}.json",
                 crashing.run_dir / "pods" / uid):
        assert not path.exists(), path
