"""`tinykube daemon --store etcd://…`: the daemon keeps every object in etcd (keys
/registry/<kind>/<namespace>/<name>, resourceVersion = etcd's revision) and runs a Deployment
with real pods, through a rollout and a restart of the daemon, as it does on SQLite."""

from __future__ import annotations

import base64
import json

import pytest

from tests.integration.daemon import Daemon, is_ready, wait_for
from tinykube.testing.lifecycle import running

pytestmark = pytest.mark.root


def deployment(version: str, replicas: int = 2) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "env": [{"name": "V", "value": version}],
                                     "command": ["sh", "-c",
                                                 "trap 'exit 0' TERM; while :; do sleep 0.1; "
                                                 "done"]}]}}}})


@pytest.fixture
def etcd_daemon(tmp_path, etcd):
    d = Daemon(tmp_path)
    d.extra_args = ["--store", etcd.store_flag]
    with running(d) as daemon:
        yield daemon


def ready_pods(daemon: Daemon, version: str) -> list[dict]:
    pods = daemon.get_json("pods", "-l", "app=web")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp") and is_ready(p)
            and p["spec"]["containers"][0]["env"][0]["value"] == version]


def stored(etcd, kind: str, name: str) -> dict:
    key = base64.b64encode(f"/registry/{kind}/default/{name}".encode()).decode()
    return etcd.call("/v3/kv/range", {"key": key})


def test_a_deployment_runs_rolls_out_and_survives_a_restart_on_etcd(etcd_daemon, etcd):
    daemon = etcd_daemon
    daemon.apply(deployment("1"))
    wait_for(lambda: len(ready_pods(daemon, "1")) == 2, timeout=60, what="2 ready v1 pods")
    web = daemon.get_json("deployment", "web")
    (kv,) = stored(etcd, "Deployment", "web")["kvs"]
    assert web["metadata"]["resourceVersion"] == kv["mod_revision"]
    assert json.loads(base64.b64decode(kv["value"]))["metadata"]["uid"] == \
        web["metadata"]["uid"]
    for pod in daemon.get_json("pods", "-l", "app=web")["items"]:
        assert stored(etcd, "Pod", pod["metadata"]["name"])["kvs"]

    daemon.apply(deployment("2"))
    wait_for(lambda: len(ready_pods(daemon, "2")) == 2
             and len(daemon.get_json("pods", "-l", "app=web")["items"]) == 2,
             timeout=90, what="the rollout to 2 ready v2 pods, old pods gone")
    uids = {p["metadata"]["uid"] for p in ready_pods(daemon, "2")}

    daemon.stop()
    daemon.start()  # the store is etcd's: everything is still there, pods are re-adopted
    wait_for(lambda: {p["metadata"]["uid"] for p in ready_pods(daemon, "2")} == uids,
             timeout=60, what="the same pods ready after the restart")
    assert len(daemon.get_json("replicasets", "-l", "app=web")["items"]) == 2
