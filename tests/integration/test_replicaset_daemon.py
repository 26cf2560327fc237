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
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon import Daemon, container_pid, is_ready, wait_for
from tinykube.model.errors import NotFound

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

    # The pause dies: the pod fails and the ReplicaSet replaces it with a new pod.
    pause = pause_pid(daemon, victim)
    os.kill(pause, signal.SIGKILL)
    after_kill = wait_owned_running(daemon, "ReplicaSet", "web", 2)
    assert victim["metadata"]["name"] not in names(after_kill)
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
    # 3 creates: two at first, one for the failed pod (deleted by the RS as terminal).
    assert len(event_messages(daemon, "ReplicaSet", "web", "SuccessfulCreate")) == 3
