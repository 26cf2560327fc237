"""`tinykube reset` leaves nothing of tinykube on the host, and many clients at once neither
corrupt the store, starve pod supervision nor leak resources.

The after-reset check is the shared before-stop hook's (links, named netns, cgroups, mounts)
plus processes, restricted to this daemon's names (bridge, veths of its pods, its cgroup
subtree, its root and run dir): other tests run daemons on this machine at the same time.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon, container_pid, wait_for
from tests.integration.manifests import stateful_set
from tinykube.client import Client
from tinykube.model.errors import ApiError, NotFound
from tinykube.netns.ipamlog import recorded_allocations
from tinykube.runtime.cgroups import detect
from tinykube.runtime.syscalls import proc_start_time, process_alive
from tinykube.runtime.warmpool import is_pool_uid

pytestmark = pytest.mark.root

WORKLOAD = """
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec:
  replicas: 3
  selector: {matchLabels: {app: rs}}
  template:
    metadata: {labels: {app: rs}}
    spec:
      terminationGracePeriodSeconds: 1
      volumes: [{name: scratch, emptyDir: {}}]
      containers:
        - {name: c, command: [sleep, infinity], volumeMounts: [{name: scratch, mountPath: /s}]}
---""" + stateful_set("db", "echo kept > /data/mark; exec sleep infinity")


def reset(daemon: Daemon, *extra: str) -> str:
    return daemon.cli("reset", "--root", str(daemon.root), "--run-dir", str(daemon.run_dir),
                      "--bridge", daemon.bridge, "--pod-cidr", daemon.cidr,
                      "--cgroup-subtree", daemon.cgroup_subtree, *extra).stdout


def running_pods(daemon: Daemon, count: int) -> list[dict]:
    def check() -> list[dict] | None:
        pods = daemon.client.list("Pod", "default")
        running = [p for p in pods if p.get("status", {}).get("phase") == "Running"
                   and "running" in p["status"]["containerStatuses"][0]["state"]]
        return running if len(running) == count == len(pods) else None
    return wait_for(check, timeout=90, what=f"{count} pods running")


def host_leftovers(daemon: Daemon, uids: set[str], pids: list[tuple[int, int]]) -> list[str]:
    """What the before-stop hook looks for, for this daemon's names only, plus processes."""
    found = []
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    names = {daemon.bridge} | {f"tkv{uid[:8]}" for uid in uids}
    found += [f"link: {line}" for line in links
              if any(f": {n}:" in line or f": {n}@" in line or f"master {daemon.bridge} " in line
                     for n in names)]
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           check=False).stdout.splitlines()
    found += [f"netns: {n}" for n in netns if any(x in n for x in names)]
    cgroups = subprocess.run(["find", "/sys/fs/cgroup", "-maxdepth", "8", "-type", "d",
                              "-name", f"*{daemon.cgroup_subtree}*"], capture_output=True,
                             text=True, check=False).stdout.split()
    found += [f"cgroup: {c}" for c in cgroups]
    found += [f"cgroup: {c}" for c in detect(None, subtree=daemon.cgroup_subtree).subtree_dirs()
              if os.path.exists(c)]
    marks = (str(daemon.root), str(daemon.run_dir), daemon.cgroup_subtree)
    found += [f"mount: {line}" for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if any(m in line for m in marks)]
    found += [f"process {pid} (recorded)" for pid, start in pids if process_alive(pid, start)]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"/{daemon.cgroup_subtree}/" in (entry / "cgroup").read_text():
                    found.append(f"process {entry.name} in the cgroup subtree")
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def pod_processes(daemon: Daemon, pods: list[dict]) -> tuple[set[str], list[tuple[int, int]]]:
    uids, pids = set(), []
    for pod in pods:
        uid = pod["metadata"]["uid"]
        uids.add(uid)
        record = json.loads((daemon.run_dir / "pods" / f"{uid}.json").read_text())
        for proc in [record["pause"]] + [c["process"] for c in record["containers"].values()]:
            pids.append((proc["pid"], proc["start_time"]))
    return uids, pids


def test_reset_with_the_daemon_running_keeps_store_and_volumes(daemon: Daemon):
    daemon.apply(WORKLOAD)
    pods = running_pods(daemon, 4)
    uids, pids = pod_processes(daemon, pods)
    claim = daemon.client.list("PersistentVolumeClaim", "default")[0]["metadata"]["name"]
    volume = daemon.root / "volumes" / "default" / claim
    wait_for(lambda: (volume / "mark").exists(), what="the StatefulSet's file")
    assert daemon.process is not None

    out = reset(daemon)
    assert "stopped the daemon" in out and "tinykube reset complete" in out
    assert daemon.process.wait(timeout=5) == 0  # it was stopped, not killed
    assert host_leftovers(daemon, uids, pids) == []
    assert not daemon.run_dir.exists() and not (daemon.root / "pods").exists()
    assert (daemon.root / "state.db").exists() and (volume / "mark").read_text() == "kept\n"

    # The store survived: a new daemon runs the same objects again, on the kept volume.
    daemon.start()
    pods = running_pods(daemon, 4)
    assert {p["metadata"]["uid"] for p in pods} == uids
    assert (volume / "mark").read_text() == "kept\n"


def test_reset_after_kill_9_with_purge_removes_everything(daemon: Daemon):
    daemon.apply(WORKLOAD)
    pods = running_pods(daemon, 4)
    uids, pids = pod_processes(daemon, pods)
    daemon.stop(signal.SIGKILL)
    assert all(process_alive(*p) for p in pids)  # pods outlive the daemon until the reset

    out = reset(daemon, "--purge")
    assert "stopped 4 pods" in out and "purged" in out
    assert host_leftovers(daemon, uids, pids) == []
    assert not daemon.root.exists() and not daemon.run_dir.exists()
    daemon.start()  # a fresh, empty node
    assert daemon.client.list("Pod", "*") == []
    assert reset(daemon, "--purge")  # reset is idempotent (and stops this daemon again)
    assert host_leftovers(daemon, set(), []) == []


# ---- under load ------------------------------------------------------------------------------

def _rs(name: str, replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default", "labels": {"load": "yes"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"rs": name}},
                     "template": {"metadata": {"labels": {"rs": name, "load": "yes"}},
                                  "spec": {"terminationGracePeriodSeconds": 0,
                                           "containers": [{"name": "c",
                                                           "command": ["sleep", "infinity"]}]}}}}


def _client_loop(daemon: Daemon, worker: int, seconds: float, errors: list[str],
                 ops: list[int]) -> None:
    """apply / scale / delete at random, on the worker's own sets and one shared by all."""
    rng = random.Random(worker)
    deadline = time.monotonic() + seconds
    with Client(daemon.socket) as client:
        while time.monotonic() < deadline:
            name = rng.choice([f"w{worker}-{rng.randrange(2)}", "shared"])
            action = rng.choice(["apply", "apply", "scale", "scale", "delete"])
            try:
                if action == "apply":
                    client.apply(_rs(name, rng.randrange(3)))
                elif action == "scale":
                    client.scale("ReplicaSet", name, "default", rng.randrange(3))
                else:
                    client.delete("ReplicaSet", name, "default")
            except (NotFound, ApiError) as e:
                if e.code not in (404, 409):  # racing deletes and conflicts are expected
                    errors.append(f"{action} {name}: {e}")
            except Exception as e:  # noqa: BLE001 - collected and reported by the test
                errors.append(f"{action} {name}: {e!r}")
            ops[worker] += 1


def test_many_clients_at_once_leave_a_consistent_store_and_nothing_behind(daemon: Daemon,
                                                                         tmp_path: Path):
    beat = tmp_path / "beat"
    # The canary's readiness probe touches a host file every second: if supervision starves
    # under load, the file goes stale.
    daemon.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: canary}}
spec:
  terminationGracePeriodSeconds: 0
  # The host directory comes in as a volume: a container's /tmp is its own tmpfs.
  volumes: [{{name: beat, hostPath: {{path: "{beat.parent}"}}}}]
  containers:
    - name: c
      command: [sleep, infinity]
      volumeMounts: [{{name: beat, mountPath: /beat}}]
      readinessProbe: {{exec: {{command: [touch, "/beat/{beat.name}"]}}, periodSeconds: 1}}
""")
    daemon.wait_ready("canary")
    canary_pid = container_pid(daemon.pod("canary"))
    canary_start = proc_start_time(canary_pid)

    workers, seconds = 6, 20
    errors: list[str] = []
    ops = [0] * workers
    threads = [threading.Thread(target=_client_loop, args=(daemon, i, seconds, errors, ops))
               for i in range(workers)]
    for t in threads:
        t.start()
    stale, slowest_health = 0.0, 0.0
    started = time.monotonic()
    while any(t.is_alive() for t in threads):
        time.sleep(0.5)
        if time.monotonic() - started > 3:
            stale = max(stale, time.time() - beat.stat().st_mtime)
        t0 = time.monotonic()
        assert daemon.client.healthy()
        slowest_health = max(slowest_health, time.monotonic() - t0)
    for t in threads:
        t.join()
    print(f"load: {sum(ops)} writes by {workers} clients in {seconds}s; canary probe at most "
          f"{stale:.1f}s stale; slowest /healthz {slowest_health * 1000:.0f} ms")
    assert errors == []
    assert stale < 5, f"the canary's probe did not run for {stale:.1f}s under load"
    assert proc_start_time(canary_pid) == canary_start, "the canary was restarted"

    # Settle: each ReplicaSet owns exactly its replicas, every pod has an owner that exists.
    def consistent() -> bool:
        sets = {r["metadata"]["name"]: r for r in daemon.client.list("ReplicaSet", "default")}
        pods = daemon.client.list("Pod", "default", label_selector="load=yes")
        counts: dict[str, int] = {}
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                return False
            counts[pod["metadata"]["labels"]["rs"]] = counts.get(
                pod["metadata"]["labels"]["rs"], 0) + 1
        return all(counts.get(n, 0) == r["spec"]["replicas"] for n, r in sets.items()) and \
            set(counts) <= set(sets)
    wait_for(consistent, timeout=90, what="every ReplicaSet to own exactly its replicas")

    # The store on disk holds every acknowledged write (status writes are not fsynced, by
    # design, so compare what users and controllers wrote: objects, uids, generations, specs).
    def durable() -> set[tuple]:
        return {(o["kind"], o["metadata"]["name"], o["metadata"]["uid"],
                 o["metadata"].get("generation"), json.dumps(o["spec"], sort_keys=True))
                for kind in ("ReplicaSet", "Pod") for o in daemon.client.list(kind, "default")}
    before = durable()
    daemon.stop(signal.SIGKILL)
    daemon.start()
    assert durable() == before

    # Deleting everything leaves no pod resource behind: cgroups, links, addresses, records.
    daemon.cli("delete", "rs", "--all")
    daemon.cli("delete", "pod", "canary")
    wait_for(lambda: not daemon.client.list("Pod", "default"), timeout=90, what="no pods")
    # Warm sandboxes (uids `w-…`, runtime/warmpool.py) belong to the node, not to a pod.
    cgroups = detect(None, subtree=daemon.cgroup_subtree)
    wait_for(lambda: not {u for u in cgroups.pod_uids() if not is_pool_uid(u)}, timeout=10,
             what="no pod cgroups")
    links = subprocess.run(["ip", "-o", "link", "show", "master", daemon.bridge],
                           capture_output=True, text=True, check=True).stdout
    assert [line for line in links.splitlines() if ": tkvw-" not in line] == []
    ipam = recorded_allocations(daemon.root / "network")
    assert {u: ip for u, ip in ipam.items() if not is_pool_uid(u)} == {}
    assert list((daemon.run_dir / "pods").glob("*.json")) == []
    assert list((daemon.root / "pods").iterdir()) == []
    log = daemon.log_path.read_text()
    assert "Traceback" not in log and "internal error" not in log
