"""StatefulSets on a real daemon with real pods: sticky identity and storage, ordering, peers
by name, claim retention (directories included), and the CLI around them.

Order is observed, never assumed from sleeps: a `PodLog` thread watches the namespace's pods
and records, in the order the API server sent them, when each pod was added, became Ready,
started terminating and was removed. Pods run `python3 -m http.server` on 0.0.0.0 (probes
target the pod IP, as in Kubernetes) with a tcpSocket readiness probe every second.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon import Daemon, PodWatch, is_ready, wait_for
from tinykube.model.errors import NotFound

pytestmark = pytest.mark.root

PORT = 8000

def statefulset(replicas: int = 3, version: str = "1", **spec: Any) -> dict:
    """Set `web` (serviceName `web`, claim template `data` at /data); `spec` adds fields."""
    container = {
        "name": "web",
        "command": ["python3", "-m", "http.server", str(PORT), "--bind", "0.0.0.0",
                    "--directory", "/data"],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 1},
    }
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
        "spec": {
            "serviceName": "web", "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"version": version}},
                "spec": {"terminationGracePeriodSeconds": 5, "containers": [container]},
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Mi"}}},
            }],
            **spec,
        },
    }


def manifest(replicas: int = 3, version: str = "1", **spec: Any) -> str:
    return json.dumps(statefulset(replicas, version, **spec))  # JSON is YAML


class PodLog(PodWatch):
    """A watch of the namespace's pods in a thread; `events` is [(what, pod name, uid)] with
    `what` in added / ready / terminating / deleted, each at most once per uid, in order."""

    def __init__(self, daemon: Daemon) -> None:
        super().__init__(daemon)
        self.events: list[tuple[str, str, str]] = []
        self._seen: set[tuple[str, str]] = set()

    def record(self, type_: str, pod: dict) -> None:
        meta = pod["metadata"]
        marks = ["added"]
        if is_ready(pod):
            marks.append("ready")
        if meta.get("deletionTimestamp"):
            marks.append("terminating")
        if type_ == "DELETED":
            marks.append("deleted")
        for what in marks:  # called under self.lock
            if (what, meta["uid"]) not in self._seen:
                self._seen.add((what, meta["uid"]))
                self.events.append((what, meta["name"], meta["uid"]))

    def mark(self) -> int:
        """A position in `events`: pass it as `since` to look only at what came after."""
        with self.lock:
            return len(self.events)

    def names(self, what: str, since: int = 0) -> list[str]:
        with self.lock:
            return [name for w, name, _ in self.events[since:] if w == what]

    def index(self, what: str, name: str, since: int = 0) -> int:
        """Position of the first `what` of pod `name` at or after `since`."""
        with self.lock:
            return next(i for i, (w, n, _) in enumerate(self.events)
                        if i >= since and w == what and n == name)


def ready_pods(daemon: Daemon) -> list[str]:
    return sorted(p["metadata"]["name"] for p in daemon.client.list("Pod", "default")
                  if is_ready(p) and not p["metadata"].get("deletionTimestamp"))


def wait_ready_set(daemon: Daemon, names: list[str], timeout: float = 60) -> None:
    """Exactly `names` exist, all Ready, none terminating."""
    def done() -> bool:
        pods = daemon.client.list("Pod", "default")
        return (sorted(p["metadata"]["name"] for p in pods) == sorted(names)
                and all(is_ready(p) and not p["metadata"].get("deletionTimestamp")
                        for p in pods))
    wait_for(done, timeout=timeout, what=f"pods {names} Ready")


def claim_dir(daemon: Daemon, claim: str) -> Path:
    return daemon.root / "volumes" / "default" / claim


def sh(daemon: Daemon, pod: str, script: str) -> str:
    result = daemon.exec(pod, "sh", "-c", script)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


# ---- identity, storage, order ---------------------------------------------------------------

def test_ordered_creation_sticky_identity_and_storage(daemon):
    with PodLog(daemon) as log:
        daemon.apply(manifest(3))
        wait_ready_set(daemon, ["web-0", "web-1", "web-2"])
        # The watch thread can lag well behind the API (the VM lane's emulation): stop the log
        # only once it has seen all three Ready.
        wait_for(lambda: {"web-0", "web-1", "web-2"} <= set(log.names("ready")),
                 what=f"the pod log to see web-0..2 Ready (has {log.names('ready')})")
    # OrderedReady: web-i is created only after web-(i-1) is Ready.
    assert log.names("added") == ["web-0", "web-1", "web-2"]
    assert log.index("ready", "web-0") < log.index("added", "web-1")
    assert log.index("ready", "web-1") < log.index("added", "web-2")

    table = daemon.cli("get", "sts").stdout.split("\n")
    assert table[0].split() == ["NAME", "READY", "AGE"] and table[1].split()[:2] == ["web", "3/3"]

    sh(daemon, "web-1", "echo kept-by-web-1 > /data/note")
    # Peers by name over TCP: web-0 fetches the file from web-1's server.
    assert fetch(daemon, "web-0", "web-1.web", "note") == "kept-by-web-1"
    old_uid = daemon.pod("web-1")["metadata"]["uid"]
    daemon.cli("delete", "pod", "web-1")
    wait_for(lambda: (p := _try_pod(daemon, "web-1")) and p["metadata"]["uid"] != old_uid
             and is_ready(p), timeout=60, what="a new Ready web-1")
    assert sh(daemon, "web-1", "hostname").strip() == "web-1"
    assert sh(daemon, "web-1", "cat /data/note").strip() == "kept-by-web-1"
    assert (claim_dir(daemon, "data-web-1") / "note").read_text().strip() == "kept-by-web-1"
    # web-0's /etc/hosts was rewritten in place with the new web-1's address: reach it again.
    wait_for(lambda: hosts_ip(daemon, "web-0", "web-1") == daemon.pod("web-1")["status"]["podIP"],
             timeout=10, what="web-0's /etc/hosts to list the new web-1")
    assert fetch(daemon, "web-0", "web-1", "note") == "kept-by-web-1"
    assert fetch(daemon, "web-2", "web-1.web.default.svc.cluster.local", "note") == "kept-by-web-1"


def fetch(daemon: Daemon, pod: str, host: str, path: str) -> str:
    """GET http://<host>:PORT/<path> from inside `pod` (the name resolves via /etc/hosts)."""
    code = (f"import urllib.request; print(urllib.request.urlopen("
            f"'http://{host}:{PORT}/{path}', timeout=5).read().decode(), end='')")
    result = daemon.exec(pod, "python3", "-c", code)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout.strip()


def hosts_ip(daemon: Daemon, pod: str, peer: str) -> str | None:
    for line in sh(daemon, pod, "cat /etc/hosts").splitlines():
        fields = line.split()
        if len(fields) > 1 and peer in fields[1:]:
            return fields[0]
    return None


def test_scale_down_in_reverse_and_back_finds_the_data(daemon):
    with PodLog(daemon) as log:
        daemon.apply(manifest(3))
        wait_ready_set(daemon, ["web-0", "web-1", "web-2"])
        sh(daemon, "web-2", "echo kept-by-web-2 > /data/note")
        assert hosts_ip(daemon, "web-0", "web-2") == daemon.pod("web-2")["status"]["podIP"]

        mark = log.mark()
        daemon.cli("scale", "sts/web", "--replicas", "1")
        wait_ready_set(daemon, ["web-0"])
        # Highest ordinal first, and web-1 only once web-2 is gone.
        assert log.names("terminating", mark) == ["web-2", "web-1"]
        assert log.index("deleted", "web-2", mark) < log.index("terminating", "web-1", mark)
        # Retain (the default): the claims and their directories stay.
        pvcs = daemon.cli("get", "pvc").stdout.splitlines()
        assert pvcs[0].split()[:3] == ["NAME", "STATUS", "VOLUME"]
        assert sorted(line.split()[0] for line in pvcs[1:]) == [
            "data-web-0", "data-web-1", "data-web-2"]
        assert all(line.split()[1] == "Bound" for line in pvcs[1:])
        assert (claim_dir(daemon, "data-web-2") / "note").exists()
        # The peers left web-0's /etc/hosts.
        wait_for(lambda: hosts_ip(daemon, "web-0", "web-2") is None, timeout=10,
                 what="web-2 gone from web-0's /etc/hosts")

        mark = log.mark()
        daemon.cli("scale", "sts/web", "--replicas", "3")
        wait_ready_set(daemon, ["web-0", "web-1", "web-2"])
        assert log.names("added", mark) == ["web-1", "web-2"]
        assert log.index("ready", "web-1", mark) < log.index("added", "web-2", mark)
    assert sh(daemon, "web-2", "cat /data/note").strip() == "kept-by-web-2"
    assert sh(daemon, "web-2", "hostname").strip() == "web-2"

    # Deleting the set keeps the claims and directories under Retain.
    daemon.cli("delete", "sts", "web")
    wait_for(lambda: not daemon.client.list("Pod", "default"), timeout=60, what="pods gone")
    assert len(daemon.client.list("PersistentVolumeClaim", "default")) == 3
    assert (claim_dir(daemon, "data-web-2") / "note").read_text().strip() == "kept-by-web-2"


def test_rolling_update_with_partition_and_rollout_cli(daemon):
    partitioned = {"updateStrategy": {"type": "RollingUpdate",
                                      "rollingUpdate": {"partition": 1}}}
    with PodLog(daemon) as log:
        daemon.apply(manifest(3, "1", **partitioned))
        wait_ready_set(daemon, ["web-0", "web-1", "web-2"])
        before = {n: daemon.pod(n)["metadata"]["uid"] for n in ("web-0", "web-1", "web-2")}
        revision1 = daemon.client.get("StatefulSet", "web")["status"]["updateRevision"]

        mark = log.mark()
        daemon.apply(manifest(3, "2", **partitioned))
        status = daemon.cli("rollout", "status", "statefulset/web", "--timeout", "90s")
        assert "partitioned roll out complete: 2 new pods have been updated" in status.stdout
        wait_ready_set(daemon, ["web-0", "web-1", "web-2"])
        # Only ordinals >= 1, highest first, the next only once the previous is back and Ready.
        assert log.names("terminating", mark) == ["web-2", "web-1"]
        assert log.index("ready", "web-2", log.index("added", "web-2", mark)) \
            < log.index("terminating", "web-1", mark)
    sts = daemon.client.get("StatefulSet", "web")
    revision2 = sts["status"]["updateRevision"]
    assert revision2 != revision1
    pods = {n: daemon.pod(n) for n in ("web-0", "web-1", "web-2")}
    assert pods["web-0"]["metadata"]["uid"] == before["web-0"]
    assert revision_of(pods["web-0"]) == revision1
    assert [revision_of(pods[n]) for n in ("web-1", "web-2")] == [revision2, revision2]
    assert pods["web-2"]["metadata"]["annotations"]["version"] == "2"

    history = daemon.cli("rollout", "history", "statefulset/web").stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
    daemon.cli("rollout", "undo", "statefulset/web")
    def rolled_back() -> bool:
        pods = {p["metadata"]["name"]: p for p in daemon.client.list("Pod", "default")}
        return sorted(pods) == ["web-0", "web-1", "web-2"] and all(
            revision_of(p) == revision1 and is_ready(p)
            and not p["metadata"].get("deletionTimestamp") for p in pods.values())
    wait_for(rolled_back, timeout=90, what="every pod back at revision 1")
    assert daemon.pod("web-0")["metadata"]["uid"] == before["web-0"]
    assert daemon.client.get("StatefulSet", "web")["status"]["updateRevision"] == revision1


def revision_of(pod: dict) -> str:
    return pod["metadata"]["labels"]["controller-revision-hash"]


def test_delete_policies_remove_claims_and_their_directories(daemon):
    policy = {"persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete",
                                                       "whenDeleted": "Delete"}}
    daemon.apply(manifest(2, **policy))
    wait_ready_set(daemon, ["web-0", "web-1"])
    for pod in ("web-0", "web-1"):
        sh(daemon, pod, f"echo {pod} > /data/note")
    assert claim_dir(daemon, "data-web-1").is_dir()

    daemon.cli("scale", "sts/web", "--replicas", "1")
    wait_for(lambda: not claim_dir(daemon, "data-web-1").exists(), timeout=60,
             what="data-web-1's directory removed after scale-down")
    assert [c["metadata"]["name"] for c in daemon.client.list("PersistentVolumeClaim")] == [
        "data-web-0"]
    assert (claim_dir(daemon, "data-web-0") / "note").exists()

    # Scaling up again gives ordinal 1 a fresh, empty claim.
    daemon.cli("scale", "sts/web", "--replicas", "2")
    wait_ready_set(daemon, ["web-0", "web-1"])
    assert sh(daemon, "web-1", "ls /data").strip() == ""

    daemon.cli("delete", "sts", "web")
    wait_for(lambda: not daemon.client.list("PersistentVolumeClaim", "default"), timeout=60,
             what="claims deleted with the set")
    wait_for(lambda: not any(claim_dir(daemon, f"data-web-{i}").exists() for i in (0, 1)),
             timeout=60, what="claim directories removed")
    assert not daemon.client.list("Pod", "default")


def _try_pod(daemon: Daemon, name: str) -> dict | None:
    try:
        return daemon.pod(name)
    except NotFound:
        return None
