"""ReplicaSets and ReplicationControllers on a real daemon with real pods: counts kept
through process kills and pod deletion, scale-down victims in Kubernetes' order, adoption,
release, orphaning and cascading deletion, the CLI around them and the status fields.

Pods run `sleep infinity` with an exec readiness probe `test -f /state/ready` on an emptyDir,
so a test decides which pods are ready by touching that file through `tinykube exec`.
Processes are found as the runtime reports them: the tk-shim's pid is in
`containerStatuses[].containerID`, the app is its child, and the pause's pid is in the pod
record `<run_dir>/pods/<uid>.json`.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon import Daemon, container_pid, is_ready, wait_for
from tinykube.model.errors import NotFound
from tinykube.model.meta import parse_time

pytestmark = pytest.mark.root

PROBE_FILE = "/state/ready"


# ---- manifests ----------------------------------------------------------------------------

def pod_template(labels: dict[str, str]) -> dict:
    return {
        "metadata": {"labels": labels},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [{
                "name": "app",
                "command": ["sleep", "infinity"],
                "volumeMounts": [{"name": "state", "mountPath": "/state"}],
                "readinessProbe": {"exec": {"command": ["test", "-f", PROBE_FILE]},
                                   "periodSeconds": 1},
            }],
            "volumes": [{"name": "state", "emptyDir": {}}],
        },
    }


def replicaset(name: str, replicas: int, selector: dict, labels: dict[str, str],
               **spec: Any) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": selector, "template": pod_template(labels),
                 **spec},
    })


def replication_controller(name: str, replicas: int, selector: dict[str, str],
                           labels: dict[str, str]) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": selector, "template": pod_template(labels)},
    })


def bare_pod(name: str, labels: dict[str, str]) -> str:
    template = pod_template(labels)
    return json.dumps({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, **template["metadata"]},
                       "spec": template["spec"]})


# ---- looking at pods and processes --------------------------------------------------------

def pods(daemon: Daemon) -> list[dict]:
    return daemon.client.list("Pod", "default")


def owned(daemon: Daemon, owner: dict, *, active_only: bool = True) -> list[dict]:
    """The pods whose controller reference is `owner` (active ones unless told otherwise)."""
    uid = owner["metadata"]["uid"]
    found = []
    for pod in pods(daemon):
        refs = pod["metadata"].get("ownerReferences") or []
        if not any(r.get("controller") and r.get("uid") == uid for r in refs):
            continue
        if active_only and (pod["metadata"].get("deletionTimestamp")
                            or pod.get("status", {}).get("phase") in ("Succeeded", "Failed")):
            continue
        found.append(pod)
    return found


def running(pod: dict) -> bool:
    return pod.get("status", {}).get("phase") == "Running" and bool(
        pod["status"].get("containerStatuses")) and all(
        "running" in cs.get("state", {}) for cs in pod["status"]["containerStatuses"])


def wait_owned_running(daemon: Daemon, kind: str, name: str, count: int,
                       timeout: float = 60) -> list[dict]:
    """Wait until exactly `count` pods controlled by kind/name exist, all running, and no
    other pod of that owner is left (terminating ones included)."""
    def check() -> list[dict] | None:
        owner = daemon.client.get(kind, name, "default")
        mine = owned(daemon, owner, active_only=False)
        if len(mine) == count and all(running(p) and not p["metadata"].get("deletionTimestamp")
                                      for p in mine):
            return mine
        return None
    return wait_for(check, timeout=timeout, what=f"{count} running pods of {kind} {name}")


def pods_labelled(daemon: Daemon, selector: str) -> list[dict]:
    return daemon.client.list("Pod", "default", label_selector=selector)


def names(objs: list[dict]) -> set[str]:
    return {o["metadata"]["name"] for o in objs}


def pause_pid(daemon: Daemon, pod: dict) -> int:
    record = json.loads((daemon.run_dir / "pods" / f"{pod['metadata']['uid']}.json").read_text())
    return int(record["pause"]["pid"])


def app_pid(pod: dict) -> int:
    """The container's app: the only child of its tk-shim."""
    shim = container_pid(pod)
    children = Path(f"/proc/{shim}/task/{shim}/children").read_text().split()
    assert len(children) == 1, f"tk-shim {shim} of {pod['metadata']['name']}: {children}"
    return int(children[0])


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def make_ready(daemon: Daemon, pod: dict) -> None:
    name = pod["metadata"]["name"]
    result = daemon.exec(name, "touch", PROBE_FILE)
    assert result.returncode == 0, result.stderr
    daemon.wait_ready(name, timeout=20)


def status_of(daemon: Daemon, kind: str, name: str) -> dict:
    return daemon.client.get(kind, name, "default").get("status") or {}


def wait_status(daemon: Daemon, kind: str, name: str, timeout: float = 30,
                **expected: int) -> dict:
    def check() -> dict | None:
        obj = daemon.client.get(kind, name, "default")
        status = obj.get("status") or {}
        want = dict(expected)
        want.setdefault("observedGeneration", obj["metadata"]["generation"])
        return status if all(status.get(k, 0) == v for k, v in want.items()) else None
    return wait_for(check, timeout=timeout, what=f"{kind} {name} status {expected} "
                    f"(now {status_of(daemon, kind, name)})")


def event_messages(daemon: Daemon, kind: str, name: str, reason: str) -> list[str]:
    owner = daemon.client.get(kind, name, "default")
    return [e.get("message", "") for e in daemon.client.events(owner) if e.get("reason") == reason]


def table(output: str) -> dict[str, dict[str, str]]:
    """A `get` table as {NAME: {HEADER: value}}."""
    lines = output.strip().splitlines()
    headers = lines[0].split()
    return {row.split()[0]: dict(zip(headers, row.split())) for row in lines[1:]}


# ---- tests --------------------------------------------------------------------------------

WEB = {"app": "web"}
WEB_EXPRESSIONS = {"matchExpressions": [
    {"key": "app", "operator": "In", "values": ["web", "www"]},
    {"key": "tier", "operator": "NotIn", "values": ["db"]},
]}


def test_rs_and_rc_keep_their_own_counts_through_kills_and_deletes(daemon: Daemon) -> None:
    daemon.apply(replicaset("web", 2, WEB_EXPRESSIONS, WEB))
    daemon.apply(replication_controller("legacy", 3, WEB, WEB))
    rs_pods = wait_owned_running(daemon, "ReplicaSet", "web", 2)
    rc_pods = wait_owned_running(daemon, "ReplicationController", "legacy", 3)
    assert len(pods(daemon)) == 5  # same labels, yet neither took the other's pods
    wait_status(daemon, "ReplicaSet", "web", replicas=2, readyReplicas=0)
    wait_status(daemon, "ReplicationController", "legacy", replicas=3, readyReplicas=0)

    # The app dies: the container restarts in place (restartPolicy Always), same pod.
    victim = rs_pods[0]
    os.kill(app_pid(victim), signal.SIGKILL)
    daemon.wait_pod(victim["metadata"]["name"],
                    lambda p: p["status"]["containerStatuses"][0]["restartCount"] == 1
                    and running(p), timeout=30, what="container restarted")
    assert names(owned(daemon, daemon.client.get("ReplicaSet", "web", "default"))) == names(rs_pods)

    # The pause dies: as the kubelet does under restartPolicy Always, the same pod gets a new
    # sandbox and its container starts again there (restartCount up); nothing is replaced.
    pause = pause_pid(daemon, victim)
    os.kill(pause, signal.SIGKILL)
    daemon.wait_pod(victim["metadata"]["name"],
                    lambda p: p["status"]["containerStatuses"][0]["restartCount"] == 2
                    and running(p) and pause_pid(daemon, p) != pause, timeout=30,
                    what="sandbox re-created")
    after_kill = wait_owned_running(daemon, "ReplicaSet", "web", 2)
    assert names(after_kill) == names(rs_pods)
    assert not alive(pause)

    # A deleted pod of the controller is replaced too; the RS is untouched.
    gone = rc_pods[0]
    daemon.cli("delete", "pod", gone["metadata"]["name"])
    after_delete = wait_owned_running(daemon, "ReplicationController", "legacy", 3)
    assert gone["metadata"]["name"] not in names(after_delete)
    assert names(owned(daemon, daemon.client.get("ReplicaSet", "web", "default"))) == names(after_kill)
    assert not alive(container_pid(gone))

    for pod in after_kill[:1] + after_delete[:2]:
        make_ready(daemon, pod)
    wait_status(daemon, "ReplicaSet", "web", replicas=2, readyReplicas=1, availableReplicas=1,
                fullyLabeledReplicas=2)
    wait_status(daemon, "ReplicationController", "legacy", replicas=3, readyReplicas=2,
                availableReplicas=2, fullyLabeledReplicas=3)

    rs_table = table(daemon.cli("get", "rs").stdout)
    assert list(rs_table) == ["web"]
    assert {k: rs_table["web"][k] for k in ("DESIRED", "CURRENT", "READY")} == \
        {"DESIRED": "2", "CURRENT": "2", "READY": "1"}
    assert "AGE" in rs_table["web"]
    rc_table = table(daemon.cli("get", "rc").stdout)
    assert {k: rc_table["legacy"][k] for k in ("DESIRED", "CURRENT", "READY")} == \
        {"DESIRED": "3", "CURRENT": "3", "READY": "2"}

    described = daemon.cli("describe", "rs", "web").stdout
    assert "SuccessfulCreate" in described
    # 2 creates: the pod whose pause died got a new sandbox, not a replacement.
    assert len(event_messages(daemon, "ReplicaSet", "web", "SuccessfulCreate")) == 2


def ready_time(pod: dict) -> float:
    for condition in pod["status"]["conditions"]:
        if condition["type"] == "Ready" and condition["status"] == "True":
            return parse_time(condition["lastTransitionTime"])
    raise AssertionError(f"pod {pod['metadata']['name']} is not ready")


def after_second_of(stamp: float) -> None:
    """Wait until the wall clock is past the second `stamp` is in: the API's times have
    one-second resolution, and the victim order is about readiness times being different."""
    wait_for(lambda: time.time() >= stamp + 1.05, timeout=5, interval=0.05, what="next second")


def scale(daemon: Daemon, name: str, replicas: int) -> None:
    out = daemon.cli("scale", f"rs/{name}", "--replicas", str(replicas)).stdout
    assert "scaled" in out


def test_scale_up_and_down_picks_victims_in_kubernetes_order(daemon: Daemon) -> None:
    labels = {"app": "scale"}
    daemon.apply(replicaset("scale", 3, {"matchLabels": labels}, labels))
    first = sorted(wait_owned_running(daemon, "ReplicaSet", "scale", 3),
                   key=lambda p: p["metadata"]["name"])
    a, b, c = (p["metadata"]["name"] for p in first)
    make_ready(daemon, first[0])
    make_ready(daemon, first[1])
    after_second_of(max(ready_time(daemon.pod(a)), ready_time(daemon.pod(b))))
    make_ready(daemon, first[2])  # C: ready for less time than A and B

    scale(daemon, "scale", 10)
    ten = wait_owned_running(daemon, "ReplicaSet", "scale", 10)
    wait_status(daemon, "ReplicaSet", "scale", replicas=10, readyReplicas=3)
    new = sorted((p for p in ten if p["metadata"]["name"] not in {a, b, c}),
                 key=lambda p: p["metadata"]["name"])
    after_second_of(ready_time(daemon.pod(c)))
    make_ready(daemon, new[0])
    make_ready(daemon, new[1])  # D, E: ready for the least time
    ready_ones = {a, b, c, new[0]["metadata"]["name"], new[1]["metadata"]["name"]}
    unready = [p for p in new if p["metadata"]["name"] not in ready_ones]

    # F: the unready pod that "newer first" alone would delete last; one restart puts it first.
    f = max(unready, key=lambda p: (-parse_time(p["metadata"]["creationTimestamp"]),
                                    p["metadata"]["name"]))
    f_name = f["metadata"]["name"]
    os.kill(app_pid(f), signal.SIGKILL)
    daemon.wait_pod(f_name, lambda p: p["status"]["containerStatuses"][0]["restartCount"] >= 1
                    and running(p), timeout=30, what=f"{f_name} restarted")
    wait_status(daemon, "ReplicaSet", "scale", replicas=10, readyReplicas=5)

    scale(daemon, "scale", 9)
    nine = wait_owned_running(daemon, "ReplicaSet", "scale", 9)
    assert f_name not in names(nine), "the unready pod with the most restarts goes first"
    assert event_messages(daemon, "ReplicaSet", "scale", "SuccessfulDelete") == \
        [f"Deleted pod: {f_name}"]

    # 9 -> 2: the 4 unready pods first. Among the ready ones Kubernetes compares readiness
    # times in log2 buckets of their age (LogarithmicScaleDown, on since 1.22): A..E became
    # ready within seconds of each other, tens of seconds ago, so they may share a bucket and
    # then the uid decides. The bucket order itself is unit-tested (test_replicaset_plan).
    pauses = {p["metadata"]["name"]: pause_pid(daemon, p) for p in nine}
    scale(daemon, "scale", 2)
    two = wait_owned_running(daemon, "ReplicaSet", "scale", 2)
    survivors = names(two)
    assert survivors <= ready_ones, "an unready pod outlived a ready one"
    status = wait_status(daemon, "ReplicaSet", "scale", replicas=2, readyReplicas=2,
                         availableReplicas=2, fullyLabeledReplicas=2)
    assert status["observedGeneration"] == 4  # created, then scaled to 10, 9 and 2
    deleted = {m.removeprefix("Deleted pod: ")
               for m in event_messages(daemon, "ReplicaSet", "scale", "SuccessfulDelete")}
    assert deleted == names(nine) - survivors | {f_name}
    described = daemon.cli("describe", "rs", "scale").stdout
    victim = sorted(deleted - {f_name})[0]
    assert "SuccessfulDelete" in described and f"Deleted pod: {victim}" in described
    wait_for(lambda: not any(alive(pid) for n, pid in pauses.items() if n not in survivors),
             timeout=20, what="processes of the deleted pods gone")
    assert len(pods(daemon)) == 2


def owner_refs(pod: dict) -> list[dict]:
    return pod["metadata"].get("ownerReferences") or []


def test_adopt_release_orphan_and_cascades(daemon: Daemon) -> None:
    selector = {"matchLabels": {"app": "cache"}}
    template_labels = {"app": "cache", "release": "v1"}

    # Adoption: a bare pod that matches counts towards the set, which creates one pod only.
    daemon.apply(bare_pod("stray", {"app": "cache"}))
    stray = daemon.wait_running("stray")
    daemon.apply(replicaset("cache", 2, selector, template_labels, minReadySeconds=4))
    two = wait_owned_running(daemon, "ReplicaSet", "cache", 2)
    assert "stray" in names(two)
    rs = daemon.client.get("ReplicaSet", "cache", "default")
    assert owner_refs(daemon.pod("stray")) == [{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "cache",
        "uid": rs["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    assert len(event_messages(daemon, "ReplicaSet", "cache", "SuccessfulCreate")) == 1
    # The stray lacks the template's `release` label: not fully labeled.
    wait_status(daemon, "ReplicaSet", "cache", replicas=2, fullyLabeledReplicas=1,
                readyReplicas=0, availableReplicas=0)

    # minReadySeconds: ready pods become available only after being ready that long.
    for pod in two:
        make_ready(daemon, pod)
    became_ready = max(ready_time(daemon.pod(n)) for n in names(two))
    status = wait_status(daemon, "ReplicaSet", "cache", replicas=2, readyReplicas=2)
    if time.time() < became_ready + 3:  # only meaningful if we looked in time
        assert status["availableReplicas"] < 2, status
    wait_status(daemon, "ReplicaSet", "cache", replicas=2, readyReplicas=2, availableReplicas=2)
    assert time.time() >= became_ready + 4 - 1  # API times have one-second resolution

    # Release: relabelled by apply so it no longer matches, the stray loses its owner ref,
    # keeps running (same processes) and is replaced.
    stray_pause = pause_pid(daemon, stray)
    assert daemon.apply(bare_pod("stray", {"app": "other"})).strip() == "pod/stray configured"
    wait_for(lambda: not owner_refs(daemon.pod("stray")), timeout=10, what="stray released")
    replaced = wait_owned_running(daemon, "ReplicaSet", "cache", 2)
    assert "stray" not in names(replaced)
    for pod in replaced:
        if not is_ready(pod):
            make_ready(daemon, pod)
    assert daemon.pod("stray")["metadata"]["uid"] == stray["metadata"]["uid"]
    assert running(daemon.pod("stray")) and alive(stray_pause)

    # Orphan: the set goes, its pods stay running with no owner references ...
    kept = {p["metadata"]["uid"]: pause_pid(daemon, p) for p in replaced}
    daemon.cli("delete", "rs", "cache", "--cascade=orphan")
    with pytest.raises(NotFound):
        daemon.client.get("ReplicaSet", "cache", "default")
    cache_pods = pods_labelled(daemon, "app=cache")
    assert {p["metadata"]["uid"] for p in cache_pods} == set(kept)
    assert all(not owner_refs(p) and running(p) for p in cache_pods)
    assert all(alive(pid) for pid in kept.values())

    # ... and a new set with the same selector adopts them without creating any.
    daemon.apply(replicaset("cache2", 2, selector, template_labels))
    adopted = wait_owned_running(daemon, "ReplicaSet", "cache2", 2)
    assert {p["metadata"]["uid"] for p in adopted} == set(kept)
    wait_status(daemon, "ReplicaSet", "cache2", replicas=2, readyReplicas=2)
    assert event_messages(daemon, "ReplicaSet", "cache2", "SuccessfulCreate") == []

    # Background cascade: the set goes at once, then its pods and their processes.
    daemon.cli("delete", "rs", "cache2")
    wait_for(lambda: not pods_labelled(daemon, "app=cache"), timeout=30,
             what="pods of cache2 gone")
    wait_for(lambda: not any(alive(pid) for pid in kept.values()), timeout=10,
             what="processes of cache2's pods gone")

    # Foreground cascade: the set stays (with its finalizer) until its pods are gone.
    daemon.apply(replicaset("cache3", 2, selector, template_labels))
    fg_pods = wait_owned_running(daemon, "ReplicaSet", "cache3", 2)
    fg_pauses = [pause_pid(daemon, p) for p in fg_pods]
    daemon.cli("delete", "rs", "cache3", "--cascade=foreground", "--wait=false")
    deleting = daemon.client.get("ReplicaSet", "cache3", "default")
    assert deleting["metadata"].get("deletionTimestamp")
    assert "foregroundDeletion" in deleting["metadata"].get("finalizers", [])

    def rs_gone() -> bool:
        try:
            daemon.client.get("ReplicaSet", "cache3", "default")
        except NotFound:
            return True
        return False
    wait_for(rs_gone, timeout=30, what="cache3 gone")
    assert not pods_labelled(daemon, "app=cache"), "foreground: pods go before their owner"
    assert not any(alive(pid) for pid in fg_pauses)

    # The released pod was never touched by any of it.
    assert running(daemon.pod("stray")) and alive(stray_pause)
    assert not owner_refs(daemon.pod("stray"))


def test_finished_orphans_are_neither_adopted_nor_deleted(daemon: Daemon) -> None:
    """Kubernetes filters inactive pods out before claiming: an ownerless Succeeded or Failed
    pod that matches the selector is left alone by a ReplicaSet and an RC (not adopted, not
    deleted, not counted)."""
    for name, code in (("done", 0), ("crashed", 1)):
        daemon.apply(json.dumps({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "finished"}},
            "spec": {"restartPolicy": "Never",
                     "containers": [{"name": "c", "command": ["sh", "-c", f"exit {code}"]}]}}))
    for name, phase in (("done", "Succeeded"), ("crashed", "Failed")):
        daemon.wait_pod(name, lambda p, phase=phase: p["status"].get("phase") == phase,
                        what=f"{name} {phase}")
    daemon.apply(replicaset("rs", 1, {"matchLabels": {"app": "finished"}}, {"app": "finished"}))
    daemon.apply(replication_controller("rc", 1, {"app": "finished"}, {"app": "finished"}))
    wait_for(lambda: len(pods(daemon)) == 4, what="one new pod for each controller")
    for owner in ("rs", "rc"):
        kind = "ReplicaSet" if owner == "rs" else "ReplicationController"
        wait_for(lambda kind=kind, owner=owner:
                 (daemon.client.get(kind, owner).get("status") or {}).get("replicas") == 1,
                 what=f"{owner} status")
    # Each controller has reconciled with the finished pods present (they came first): an
    # adoption, and the deletion of adopted finished pods, would have happened by now.
    for name in ("done", "crashed"):
        finished = daemon.pod(name)
        assert not finished["metadata"].get("ownerReferences"), finished["metadata"]
        assert not finished["metadata"].get("deletionTimestamp")
