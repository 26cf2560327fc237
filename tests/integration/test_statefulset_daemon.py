"""StatefulSets on a real daemon with real pods: sticky identity and storage, ordering, peers
by name, claim retention (directories included), and the CLI around them.

Order is observed, never assumed from sleeps: a `PodLog` thread watches the namespace's pods
and records, in the order the API server sent them, when each pod was added, became Ready,
started terminating and was removed. Pods run `python3 -m http.server` on 0.0.0.0 (probes
target the pod IP, as in Kubernetes) with a tcpSocket readiness probe every second.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon import Daemon, is_ready, wait_for
from tinykube.client import Client, StreamIdle
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


class PodLog:
    """A watch of the namespace's pods in a thread; `events` is [(what, pod name, uid)] with
    `what` in added / ready / terminating / deleted, each at most once per uid, in order."""

    def __init__(self, daemon: Daemon) -> None:
        self.client = Client(daemon.socket)
        self.events: list[tuple[str, str, str]] = []
        self._seen: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "PodLog":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.client.close()

    def _run(self) -> None:
        rv = None
        while not self._stop.is_set():
            try:
                for type_, pod in self.client.watch("Pod", "default", resource_version=rv,
                                                    idle_timeout=0.5):
                    rv = pod["metadata"]["resourceVersion"]
                    self._record(type_, pod)
                    if self._stop.is_set():
                        return
            except StreamIdle:
                continue

    def _record(self, type_: str, pod: dict) -> None:
        meta = pod["metadata"]
        marks = ["added"]
        if is_ready(pod):
            marks.append("ready")
        if meta.get("deletionTimestamp"):
            marks.append("terminating")
        if type_ == "DELETED":
            marks.append("deleted")
        with self._lock:
            for what in marks:
                if (what, meta["uid"]) not in self._seen:
                    self._seen.add((what, meta["uid"]))
                    self.events.append((what, meta["name"], meta["uid"]))

    def names(self, what: str) -> list[str]:
        with self._lock:
            return [name for w, name, _ in self.events if w == what]

    def index(self, what: str, name: str) -> int:
        with self._lock:
            return next(i for i, (w, n, _) in enumerate(self.events) if w == what and n == name)


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
    # OrderedReady: web-i is created only after web-(i-1) is Ready.
    assert log.names("added") == ["web-0", "web-1", "web-2"]
    assert log.index("ready", "web-0") < log.index("added", "web-1")
    assert log.index("ready", "web-1") < log.index("added", "web-2")

    sh(daemon, "web-1", "echo kept-by-web-1 > /data/note")
    old_uid = daemon.pod("web-1")["metadata"]["uid"]
    daemon.cli("delete", "pod", "web-1")
    wait_for(lambda: (p := _try_pod(daemon, "web-1")) and p["metadata"]["uid"] != old_uid
             and is_ready(p), timeout=60, what="a new Ready web-1")
    assert sh(daemon, "web-1", "hostname").strip() == "web-1"
    assert sh(daemon, "web-1", "cat /data/note").strip() == "kept-by-web-1"
    assert (claim_dir(daemon, "data-web-1") / "note").read_text().strip() == "kept-by-web-1"


def _try_pod(daemon: Daemon, name: str) -> dict | None:
    try:
        return daemon.pod(name)
    except NotFound:
        return None
