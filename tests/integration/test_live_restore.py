"""Live restore against the real daemon: stopping or killing it leaves every pod running, and
the next start re-adopts them without restarting anything healthy.

The 20-pod scenario is the issue's "Done when": `kill -9` of the daemon, one container made
to exit with code 3 while no daemon runs (through a trigger file on the host: the container
polls for it), then a restart. Every other pod keeps its container pids and restart counts,
the exited containers show exitCode 3 and are handled by their restartPolicy, a ReplicaSet
still holds its count and a StatefulSet's volume keeps its data.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon, container_pid, pod_cgroups, wait_for
from tests.integration.manifests import stateful_set
from tinykube.netns.ipamlog import recorded_allocations
from tinykube.runtime.syscalls import proc_start_time
from tinykube.runtime.warmpool import is_pool_uid

pytestmark = pytest.mark.root

SLEEPERS = 12  # bare pods that just run (Always/OnFailure/Never mixed)
RS_REPLICAS = 5
# + 2 pods that exit with 3 while the daemon is down + 1 StatefulSet pod = 20 pods


def sleeper(name: str, policy: str) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{group: sleepers}}}}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: 1
  containers: [{{name: c, command: [sleep, infinity]}}]
---"""


def exit_on_trigger(name: str, policy: str, trigger: Path) -> str:
    # Polls a host file, so the test can make it exit at a moment of its choosing, here
    # while no daemon runs. The file's directory comes in as a hostPath volume: a container's
    # /tmp (where tmp_path is) is a private tmpfs of its own.
    script = f"while [ ! -e /trigger/{trigger.name} ]; do sleep 0.1; done; exit 3"
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: 1
  volumes: [{{name: trigger, hostPath: {{path: {trigger.parent}}}}}]
  containers: [{{name: c, command: [sh, -c, "{script}"],
                volumeMounts: [{{name: trigger, mountPath: /trigger}}]}}]
---"""


REPLICASET = f"""
apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: keep}}
spec:
  replicas: {RS_REPLICAS}
  selector: {{matchLabels: {{app: keep}}}}
  template:
    metadata: {{labels: {{app: keep}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{{name: c, command: [sleep, infinity]}}]
---"""

STATEFULSET = stateful_set("db", "date +%s%N >> /data/boots; exec sleep infinity")


def snapshot(daemon: Daemon) -> dict[str, tuple[str, int, int, int]]:
    """{pod name: (uid, container pid, its start time, restart count)} of running pods."""
    result = {}
    for pod in daemon.client.list("Pod", "default"):
        if not _container_running(pod):
            continue
        pid = container_pid(pod)
        result[pod["metadata"]["name"]] = (pod["metadata"]["uid"], pid, proc_start_time(pid),
                                           pod["status"]["containerStatuses"][0]["restartCount"])
    return result


def _container_running(pod: dict) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" \
        and "running" in status["containerStatuses"][0]["state"]


def running_count(daemon: Daemon, expected: int):
    def check():
        snap = snapshot(daemon)
        return snap if len(snap) == expected else None
    return check


def container_status(daemon: Daemon, name: str) -> dict:
    return daemon.pod(name)["status"]["containerStatuses"][0]


def still_same(snap: dict[str, tuple[str, int, int, int]]) -> None:
    """Every recorded process still exists and is still the same process."""
    for name, (_, pid, start, _) in snap.items():
        assert proc_start_time(pid) == start, f"pod {name}: container pid {pid} was replaced"


def test_kill_9_with_20_pods_readopts_and_reads_the_real_exit_code(daemon: Daemon,
                                                                     tmp_path: Path):
    trigger = tmp_path / "exit-now"
    policies = ["Always", "OnFailure", "Never"]
    manifest = "".join(sleeper(f"s{i}", policies[i % 3]) for i in range(SLEEPERS))
    manifest += exit_on_trigger("exit-onfailure", "OnFailure", trigger)
    manifest += exit_on_trigger("exit-never", "Never", trigger)
    manifest += REPLICASET + STATEFULSET
    daemon.apply(manifest)
    total = SLEEPERS + 2 + RS_REPLICAS + 1
    before = wait_for(running_count(daemon, total), timeout=120, what=f"{total} pods running")
    claim = daemon.client.list("PersistentVolumeClaim", "default")[0]["metadata"]["name"]
    boots = daemon.root / "volumes" / "default" / claim / "boots"
    assert len(boots.read_text().splitlines()) == 1

    daemon.stop(signal.SIGKILL)
    still_same(before)  # nothing died with the daemon
    trigger.touch()
    exiting = {n: before[n][1] for n in ("exit-onfailure", "exit-never")}
    wait_for(lambda: not any(_alive(pid) for pid in exiting.values()), timeout=10,
             what="the triggered containers to exit while the daemon is down")
    trigger.unlink()  # the restarted container then keeps running
    untouched = {n: v for n, v in before.items() if n not in exiting}
    still_same(untouched)

    daemon.start()
    # OnFailure: restarted once, the previous run's real exit code kept in lastState.
    def restarted() -> dict | None:
        c = container_status(daemon, "exit-onfailure")
        return c if c["restartCount"] == 1 and "running" in c["state"] else None
    try:
        cs = wait_for(restarted, timeout=30, what="exit-onfailure restarted after exit 3")
    except AssertionError:
        raise AssertionError(f"{daemon.pod('exit-onfailure')['status']}") from None
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    # Never: the pod is Failed with the container's exit code.
    never = daemon.wait_pod("exit-never", lambda p: p["status"].get("phase") == "Failed",
                            what="exit-never Failed")
    term = never["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error"

    after = snapshot(daemon)
    for name, (uid, pid, start, restarts) in untouched.items():
        assert after.get(name) == (uid, pid, start, restarts), (
            f"pod {name} changed across the restart: {before[name]} -> {after.get(name)}")
    def rs_ready() -> dict | None:
        rs = daemon.client.get("ReplicaSet", "keep", "default")
        return rs if rs.get("status", {}).get("readyReplicas") == RS_REPLICAS else None
    rs = wait_for(rs_ready, timeout=30, what="the ReplicaSet's status")
    assert rs["status"]["replicas"] == RS_REPLICAS
    rs_pods = daemon.client.list("Pod", "default", label_selector="app=keep")
    assert len(rs_pods) == RS_REPLICAS and all(
        p["metadata"]["name"] in before for p in rs_pods), "the ReplicaSet replaced pods"
    # The StatefulSet's container was not restarted: its volume saw exactly one boot.
    assert len(boots.read_text().splitlines()) == 1
    # Supervision resumed: a re-adopted container that now exits is restarted by policy.
    os.kill(before["s0"][1], signal.SIGKILL)  # s0 is restartPolicy Always
    wait_for(lambda: container_status(daemon, "s0")["restartCount"] == 1, timeout=30,
             what="s0 restarted by the resumed supervisor")


def test_sigterm_stop_leaves_pods_and_a_restart_changes_nothing(daemon: Daemon):
    daemon.apply(REPLICASET + sleeper("lone", "Always"))
    before = wait_for(running_count(daemon, RS_REPLICAS + 1), timeout=60, what="pods running")
    rv_pods = {p["metadata"]["name"]: p["metadata"]["resourceVersion"]
               for p in daemon.client.list("Pod", "default")}
    daemon.stop(signal.SIGTERM)
    still_same(before)
    daemon.start()
    wait_for(lambda: snapshot(daemon) == before, timeout=30, what="the same pods after restart")
    # A re-adoption that finds everything as it was writes no status at all.
    after = {p["metadata"]["name"]: p["metadata"]["resourceVersion"]
             for p in daemon.client.list("Pod", "default")}
    assert after == rv_pods


def test_kill_9_during_a_graceful_delete_finishes_it_after_restart(daemon: Daemon):
    stubborn = """
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 4
  containers: [{name: c, command: [sh, -c, "trap '' TERM; while true; do sleep 0.2; done"]}]
---"""
    daemon.apply(stubborn + sleeper("stays", "Always"))
    before = wait_for(running_count(daemon, 2), timeout=60, what="pods running")
    daemon.cli("delete", "pod", "stubborn", "--wait=false", check=False)
    daemon.wait_pod("stubborn", lambda p: bool(p["metadata"].get("deletionTimestamp")),
                    what="stubborn terminating")
    daemon.stop(signal.SIGKILL)  # mid-grace: the container ignores SIGTERM
    uid, pid, _, _ = before["stubborn"]
    assert _alive(pid)
    daemon.start()
    wait_for(lambda: all(p["metadata"]["name"] != "stubborn"
                         for p in daemon.client.list("Pod", "default")),
             timeout=30, what="stubborn removed from the store")
    assert not _alive(pid)
    assert not (daemon.run_dir / "pods" / f"{uid}.json").exists()
    assert not (daemon.root / "pods" / uid).exists()
    assert not pod_cgroups({uid})
    still_same({"stays": before["stays"]})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


def _eth0_address(pod: dict) -> str:
    """The IPv4 address on eth0 inside the pod's netns, as the kernel has it."""
    out = subprocess.run(["nsenter", "-t", str(container_pid(pod)), "-n", "ip", "-4", "-o",
                          "addr", "show", "dev", "eth0"],
                         capture_output=True, text=True, check=True).stdout
    return out.split(" inet ", 1)[1].split("/", 1)[0]


def _scale(daemon: Daemon, replicas: int) -> None:
    daemon.cli("scale", "rs", "addr", f"--replicas={replicas}")


def test_kill_9_mid_scale_never_hands_one_address_to_two_pods(daemon: Daemon):
    # Addresses are recorded by appends to IPAM's journal (netns/ipamlog.py); a daemon killed
    # while pods start and while they stop must find every address still held on restart.
    daemon.apply(REPLICASET.replace("keep", "addr").replace(f"replicas: {RS_REPLICAS}",
                                                             "replicas: 0"))
    _scale(daemon, 12)
    wait_for(lambda: len(recorded_allocations(daemon.root / "network")) >= 4, timeout=60,
             what="some pods with addresses")
    daemon.stop(signal.SIGKILL)  # mid scale-out
    daemon.start()
    wait_for(running_count(daemon, 12), timeout=120, what="12 pods running after the restart")
    _scale(daemon, 5)
    wait_for(lambda: len(daemon.client.list("Pod", "default")) < 12, timeout=30,
             what="the scale-in under way")
    daemon.stop(signal.SIGKILL)  # mid scale-in
    daemon.start()
    _scale(daemon, 16)  # new allocations beside the re-adopted pods

    def sixteen_running() -> list | None:
        pods = daemon.client.list("Pod", "default")  # one list: judged and used alike
        settled = [p for p in pods
                   if _container_running(p) and not p["metadata"].get("deletionTimestamp")]
        return pods if len(pods) == 16 == len(settled) else None
    pods = wait_for(sixteen_running, timeout=120, what="16 pods running, none terminating")
    status_ips = {p["metadata"]["uid"]: p["status"]["podIP"] for p in pods}
    assert len(set(status_ips.values())) == 16, f"an address is held twice: {status_ips}"
    assert {p["metadata"]["uid"]: _eth0_address(p) for p in pods} == status_ips
    recorded = {uid: ip for uid, ip in recorded_allocations(daemon.root / "network").items()
                if not is_pool_uid(uid)}
    assert recorded == status_ips  # nothing released early, nothing left of the gone pods
