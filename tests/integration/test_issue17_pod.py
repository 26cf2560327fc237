"""Issue 17's "Done when", on a real daemon and kernel: ONE pod with two init containers, a
native sidecar, postStart/preStop hooks, downward-API env, a ConfigMap volume and a Secret env
var runs as in Kubernetes: the order of starts (and of their events), the statuses, the files
and environment the containers see, and a deletion where preStop ends before the app's
SIGTERM, the sidecar stops after the app, all within the grace period.

The containers append `<event> <unix time>` lines to a file in a hostPath directory, so the
test reads the order of events (and their times) as the containers saw them:

  prepare (init, reads the ConfigMap, leaves a seed in the emptyDir) -> proxy starts (sidecar;
  the next init waits for its startup probe) -> migrate (init, reads the Secret and the seed)
  -> app + its postStart
  delete -> app's preStop (sleeps 1 s) -> app gets SIGTERM -> the sidecar gets SIGTERM.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.daemon import wait_for

pytestmark = pytest.mark.root

GRACE = 10


def log(event: str) -> str:
    return f"echo {event} $(date +%s.%N) >> /gate/order"


def mounts(*names: str) -> list[dict]:
    paths = {"gate": "/gate", "shared": "/shared", "config": "/config"}
    return [{"name": n, "mountPath": paths[n]} for n in names]


def manifest(gate: Path) -> str:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fid-config"},
                  "data": {"greeting": "hello"}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "fid-secret"},
              "stringData": {"token": "s3cret"}}
    downward = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "TIER", "valueFrom": {"fieldRef": {
                    "fieldPath": "metadata.labels['tier']"}}},
                {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {
                    "resource": "limits.memory", "divisor": "1Mi"}}}]
    token = {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "fid-secret",
                                                             "key": "token"}}}
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "fid", "labels": {"tier": "backend"}},
        "spec": {
            "terminationGracePeriodSeconds": GRACE,
            "volumes": [{"name": "gate", "hostPath": {"path": str(gate)}},
                        {"name": "shared", "emptyDir": {}},
                        {"name": "config", "configMap": {"name": "fid-config"}}],
            "initContainers": [
                {"name": "prepare", "command": ["sh", "-c",
                 f"{log('prepare-$(cat /config/greeting)')}; echo seed > /shared/seed; "
                 "echo prepared for $(cat /config/greeting)"],
                 "volumeMounts": mounts("gate", "shared", "config")},
                {"name": "proxy", "restartPolicy": "Always", "command": ["sh", "-c",
                 f"trap '{log('proxy-term')}; exit 0' TERM; {log('proxy-start')}; sleep 1; "
                 "touch /shared/proxy-up; while :; do sleep 0.1; done"],
                 "startupProbe": {"exec": {"command": ["test", "-e", "/shared/proxy-up"]},
                                  "periodSeconds": 1},
                 "volumeMounts": mounts("gate", "shared")},
                {"name": "migrate", "command": ["sh", "-c",
                 "test -e /shared/seed || exit 4; test -e /shared/proxy-up || exit 5; "
                 f'[ "$TOKEN" = s3cret ] || exit 6; {log("migrate")}'],
                 "env": [token], "volumeMounts": mounts("gate", "shared")},
            ],
            "containers": [
                {"name": "app", "command": ["sh", "-c",
                 f"trap '{log('app-term')}; exit 0' TERM; "
                 f"{log('app-$POD_NAME-$TIER-$(cat /config/greeting)')}; "
                 "while :; do sleep 0.1; done"],
                 "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
                 "env": [*downward, token],
                 "lifecycle": {
                     "postStart": {"exec": {"command": ["sh", "-c", log("poststart")]}},
                     "preStop": {"exec": {"command": [
                         "sh", "-c", f"{log('prestop')}; sleep 1; {log('prestop-end')}"]}}},
                 "volumeMounts": mounts("gate", "config")},
            ],
        },
    }
    return "\n---\n".join(json.dumps(o) for o in (config_map, secret, pod))


def events(gate: Path) -> list[tuple[str, float]]:
    path = gate / "order"
    if not path.exists():
        return []
    return [(name, float(at)) for name, at in
            (line.split() for line in path.read_text().splitlines() if line.strip())]


def names(gate: Path) -> list[str]:
    return [name for name, _ in events(gate)]


def by_name(gate: Path) -> dict[str, float]:
    return dict(events(gate))


def test_the_issue_17_pod_runs_as_in_kubernetes(daemon, tmp_path):
    daemon.apply(manifest(tmp_path))
    pod = daemon.wait_ready("fid", timeout=60)
    wait_for(lambda: len(events(tmp_path)) >= 5, timeout=20, what="five events")

    # Order of events: each init container in turn, the sidecar started before the second
    # one, the app (and its postStart, which runs beside the app's own command) last.
    seen = names(tmp_path)
    assert seen[:3] == ["prepare-hello", "proxy-start", "migrate"]
    assert sorted(seen[3:]) == ["app-fid-backend-hello", "poststart"]
    times = by_name(tmp_path)
    assert times["proxy-start"] + 1.0 <= times["migrate"], "migrate ran before the " \
        "sidecar's startup probe could pass"
    created = [e["message"] for e in daemon.client.events(pod) if e["reason"] == "Created"]
    assert created == [f"Created container {n}" for n in ("prepare", "proxy", "migrate", "app")]

    # Statuses, as the kubelet reports them and kubectl prints them.
    status = daemon.pod("fid")["status"]
    assert status["phase"] == "Running"
    inits = {cs["name"]: cs for cs in status["initContainerStatuses"]}
    assert [cs["name"] for cs in status["initContainerStatuses"]] == [
        "prepare", "proxy", "migrate"]
    for done in ("prepare", "migrate"):
        assert inits[done]["state"]["terminated"]["exitCode"] == 0
        assert inits[done]["state"]["terminated"]["reason"] == "Completed"
        assert inits[done]["restartCount"] == 0
    assert "running" in inits["proxy"]["state"] and inits["proxy"]["started"] is True
    assert inits["proxy"]["ready"] is True
    (app,) = status["containerStatuses"]
    assert "running" in app["state"] and app["ready"] is True and app["restartCount"] == 0
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"PodScheduled": "True", "Initialized": "True",
                          "ContainersReady": "True", "Ready": "True"}
    row = daemon.cli("get", "pods", "fid").stdout.splitlines()[1].split()
    assert row[1:4] == ["2/2", "Running", "0"], row

    # Files and environment inside the containers.
    env = daemon.exec("fid", "sh", "-c", "echo $POD_NAME $POD_IP $TIER $MEM_MI $TOKEN",
                      container="app")
    assert env.returncode == 0, env.stderr
    assert env.stdout.split() == ["fid", status["podIP"], "backend", "64", "s3cret"]
    cat = daemon.exec("fid", "cat", "/config/greeting", container="app")
    assert cat.stdout == "hello", cat.stderr
    sidecar = daemon.exec("fid", "test", "-e", "/shared/proxy-up", container="proxy")
    assert sidecar.returncode == 0, sidecar.stderr
    assert daemon.cli("logs", "fid", "-c", "prepare").stdout == "prepared for hello\n"

    # Deletion: preStop runs and ends before the app's SIGTERM, the sidecar is stopped after
    # the app, all within the grace period.
    sent = time.time()
    daemon.cli("delete", "pod", "fid", "--wait=false")
    wait_for(lambda: not any(p["metadata"]["name"] == "fid"
                             for p in daemon.client.list("Pod", "default")),
             timeout=60, what="pod gone")
    seen = names(tmp_path)
    assert seen[5:] == ["prestop", "prestop-end", "app-term", "proxy-term"]
    times = by_name(tmp_path)
    assert sent <= times["prestop"] + 0.5
    assert times["prestop"] <= times["prestop-end"] <= times["app-term"]
    assert times["app-term"] - times["prestop"] >= 1.0, "SIGTERM before the preStop ended"
    assert times["proxy-term"] >= times["app-term"]
    assert times["proxy-term"] - sent < GRACE, "the stop took longer than the grace period"
