"""Restarting everything of a cluster on etcd: 2 servers and 3 agents stop, etcd restarts,
all start again, and nothing is lost: every object is there with its uid, every pod is
re-adopted where it ran (same uid, node, start time, restart count: no pod ran twice, none
was replaced), and the StatefulSet pods find their claim directories as they left them."""

from __future__ import annotations

import pytest

from tests.integration.clusternet import running_cluster, tk
from tinykube.client import Client
from tinykube.testing.daemon import wait_for

pytestmark = pytest.mark.root

MANIFESTS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        command: [sh, -c, 'trap "exit 0" TERM; while :; do sleep 0.1; done']
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 3
  serviceName: db
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        command: [sh, -c, 'echo "$HOSTNAME" >> /data/starts; trap "exit 0" TERM; while :; do sleep 0.1; done']
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Mi}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: kept}
"""
KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "ConfigMap", "PersistentVolumeClaim",
         "Node")


@pytest.fixture
def cluster(tmp_path, etcd):
    # A grace long enough for three agents to start again on a busy machine: no node is
    # declared lost while everything restarts.
    with running_cluster(tmp_path, servers=2, store=etcd.store_flag, grace=20.0,
                         eviction=120.0) as c:
        yield c


def exec_works(cluster, pod: str) -> bool:
    return tk(cluster, "exec", pod, "--", "true", check=False).returncode == 0


def pods(cluster) -> dict[str, tuple]:
    """Every Running and Ready pod: (uid, node, started at, restart count)."""
    found = {}
    for pod in cluster.client.list("Pod", "default"):
        status = pod.get("status") or {}
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in status.get("conditions") or [])
        (container,) = status.get("containerStatuses") or [{}]
        if status.get("phase") == "Running" and ready and not pod["metadata"].get(
                "deletionTimestamp"):
            found[pod["metadata"]["name"]] = (
                pod["metadata"]["uid"], pod["spec"]["nodeName"],
                container["state"]["running"]["startedAt"], container["restartCount"])
    return found


def objects(cluster) -> dict[str, dict[str, str]]:
    return {kind: {o["metadata"]["name"]: o["metadata"]["uid"]
                   for o in cluster.client.list(kind, "default")} for kind in KINDS}


def test_restarting_two_servers_three_agents_and_etcd_loses_nothing(cluster, etcd):
    agents = {a.name: a for a in (cluster.add_agent() for _ in range(3))}
    tk(cluster, "apply", "-f", "-", input=MANIFESTS)
    before = wait_for(lambda: (found := pods(cluster)) and len(found) == 9 and found,
                      timeout=120, what="6 web and 3 db pods Running and Ready")
    for name in ("db-0", "db-1", "db-2"):
        tk(cluster, "exec", name, "--", "sh", "-c", f"echo precious-{name} > /data/kept")
    kept = objects(cluster)
    assert len(kept["Node"]) == 3 and len(kept["PersistentVolumeClaim"]) == 3

    # Stop everything: the agents (their pods keep running), both servers, etcd.
    for agent in agents.values():
        agent.stop()
    for server in cluster.servers:
        server.stop()
    etcd.stop()
    etcd.start()
    for index, server in enumerate(cluster.servers, start=1):
        server.start()
        client = Client(cluster.socket_of(index))
        wait_for(lambda client=client: client.healthy(), timeout=60,
                 what=f"server{index} back")
        client.close()
    for agent in agents.values():
        agent.start()
    for name in agents:
        wait_for(lambda name=name: cluster.node_ready(name), timeout=60,
                 what=f"{name} Ready again")

    # Each agent serves exec in its pods again: its kubelet has taken them back.
    for name in before:
        wait_for(lambda name=name: exec_works(cluster, name), timeout=60,
                 what=f"exec in {name} after the restart")
    # Every pod re-adopted where it ran, none restarted or replaced; every object kept.
    wait_for(lambda: pods(cluster) == before, timeout=60,
             what=f"the same 9 pods Running and Ready (before: {before})")
    assert objects(cluster) == kept
    assert cluster.client.get("ConfigMap", "settings", "default")["data"] == {"mode": "kept"}
    for name in ("db-0", "db-1", "db-2"):
        node = before[name][1]
        claim = agents[node].root / "volumes" / "default" / f"data-{name}"
        assert (claim / "starts").read_text() == f"{name}\n"  # it ran once, on its node
        assert (claim / "kept").read_text() == f"precious-{name}\n"
        assert tk(cluster, "exec", name, "--", "cat", "/data/kept").stdout == \
            f"precious-{name}\n"
    # The cluster still works: a scale-out lands on the restarted nodes.
    tk(cluster, "scale", "deployment/web", "--replicas", "7")
    wait_for(lambda: len(pods(cluster)) == 10, timeout=60, what="a 7th web pod")
    for kind, name in (("Deployment", "web"), ("StatefulSet", "db")):
        cluster.client.delete(kind, name, "default")
    wait_for(lambda: not cluster.client.list("Pod", "default"), timeout=90,
             what="all pods gone")
