"""Issue 17's "done when" pod on a real daemon: two init containers and a native sidecar,
postStart/preStop hooks, downward-API env, a ConfigMap volume and a Secret env var, all in
one pod, checked as Kubernetes runs it: the order of starts (and of their events), the
statuses, the files and environment the app sees, and a deletion where preStop ends before
the app's SIGTERM, within the grace period, and the sidecar stops after the app.

Containers write what they do, with their own clock, into a hostPath file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.daemon import wait_for

pytestmark = pytest.mark.root

GRACE = 6
NOW = "$(date +%s.%N)"


def record(what: str) -> str:
    return f'echo "{what} {NOW}" >> /gate/order'


def term_trap(name: str) -> str:
    return f"trap '{record(name + '-term')}; exit 0' TERM; while :; do sleep 0.1; done"


def mounts() -> list[dict]:
    return [{"name": "gate", "mountPath": "/gate"}, {"name": "shared", "mountPath": "/shared"}]


def manifest(gate: Path) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "full", "labels": {"app": "full"}},
        "spec": {
            "terminationGracePeriodSeconds": GRACE,
            "volumes": [{"name": "gate", "hostPath": {"path": str(gate)}},
                        {"name": "shared", "emptyDir": {}},
                        {"name": "cfg", "configMap": {"name": "full-config"}}],
            "initContainers": [
                {"name": "init-1", "command": ["sh", "-c",
                                               f"{record('init-1')}; echo seed > /shared/seed"],
                 "volumeMounts": mounts()},
                {"name": "init-2", "command": ["sh", "-c",
                                               f"test -e /shared/seed && {record('init-2')}"],
                 "volumeMounts": mounts()},
                {"name": "sidecar", "restartPolicy": "Always",
                 "command": ["sh", "-c", f"{record('sidecar')}; {term_trap('sidecar')}"],
                 "volumeMounts": mounts()},
            ],
            "containers": [{
                "name": "app",
                "command": ["sh", "-c", f"{record('app')}; {term_trap('app')}"],
                "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "APP_LABEL", "valueFrom": {"fieldRef": {
                        "fieldPath": "metadata.labels['app']"}}},
                    {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {
                        "resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {
                        "name": "full-secret", "key": "password"}}},
                ],
                "volumeMounts": [*mounts(), {"name": "cfg", "mountPath": "/etc/app"}],
                "lifecycle": {
                    "postStart": {"exec": {"command": ["sh", "-c", record("poststart")]}},
                    "preStop": {"exec": {"command": [
                        "sh", "-c", f"{record('prestop')}; sleep 1; {record('prestop-end')}"]}},
                },
            }],
        }})


def order(gate: Path) -> list[tuple[str, float]]:
    path = gate / "order"
    if not path.exists():
        return []
    return [(line.split()[0], float(line.split()[1]))
            for line in path.read_text().splitlines() if line.strip()]


def names(gate: Path) -> list[str]:
    return [name for name, _ in order(gate)]


def test_the_issue_17_pod_runs_as_in_kubernetes(daemon, tmp_path):
    daemon.apply(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "full-config"},
                             "data": {"greeting": "hello from the config map"}}))
    daemon.apply(json.dumps({"apiVersion": "v1", "kind": "Secret",
                             "metadata": {"name": "full-secret"},
                             "stringData": {"password": "pa55-w0rd"}}))
    daemon.apply(manifest(tmp_path))
    pod = daemon.wait_ready("full", timeout=60)
    wait_for(lambda: "poststart" in names(tmp_path), what="postStart ran")

    # Order: each init container to completion, then the sidecar, then the app (postStart
    # runs once the app container started).
    seen = names(tmp_path)
    assert seen[:4] == ["init-1", "init-2", "sidecar", "app"] or \
        seen[:4] == ["init-1", "init-2", "sidecar", "poststart"], seen
    assert seen.index("poststart") > seen.index("sidecar")
    created = [e["message"] for e in daemon.client.events(pod) if e["reason"] == "Created"]
    assert created == [f"Created container {n}" for n in ("init-1", "init-2", "sidecar", "app")]

    # Statuses: init containers Completed, the sidecar running and ready, the app running.
    status = pod["status"]
    assert status["phase"] == "Running"
    inits = {cs["name"]: cs for cs in status["initContainerStatuses"]}
    for name in ("init-1", "init-2"):
        assert inits[name]["state"]["terminated"]["reason"] == "Completed"
        assert inits[name]["state"]["terminated"]["exitCode"] == 0
    assert "running" in inits["sidecar"]["state"]
    (app,) = status["containerStatuses"]
    assert "running" in app["state"] and app["ready"] is True and app["restartCount"] == 0
    row = daemon.cli("get", "pods", "full").stdout.splitlines()[1].split()
    assert row[1:3] == ["2/2", "Running"], row

    # Files and environment the app sees.
    cat = daemon.exec("full", "cat", "/etc/app/greeting", container="app")
    assert cat.stdout == "hello from the config map"
    env = dict(line.split("=", 1) for line in
               daemon.exec("full", "env", container="app").stdout.splitlines() if "=" in line)
    assert (env["POD_NAME"], env["POD_IP"], env["APP_LABEL"]) == (
        "full", status["podIP"], "full")
    assert (env["MEM_MI"], env["DB_PASSWORD"]) == ("64", "pa55-w0rd")

    # Deletion: preStop runs and ends before the app's SIGTERM, all within the grace
    # period; the sidecar is stopped after the app.
    sent = time.time()
    daemon.client.delete("Pod", "full", "default")
    wait_for(lambda: not daemon.client.list("Pod", "default"), timeout=60, what="pod gone")
    stamps = dict(order(tmp_path))
    assert stamps["prestop"] <= stamps["prestop-end"] <= stamps["app-term"]
    assert stamps["app-term"] <= stamps["sidecar-term"]
    assert stamps["app-term"] - sent < GRACE, "SIGTERM came after the grace period"
    assert stamps["app-term"] - stamps["prestop"] >= 1.0  # the hook's sleep was waited for
