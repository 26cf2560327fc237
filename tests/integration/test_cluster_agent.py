"""`tinykube server` and `tinykube agent` as real processes: agents register Nodes, the
scheduler spreads a Deployment over them, each agent runs only its pods and reports their
status through the API; an agent that stops heartbeating turns Unknown and its pods are
replaced on the other node after the (test-short) eviction timeout."""

from __future__ import annotations

import ipaddress
import subprocess
import sys

import pytest

from tests.integration.clusternet import assert_cross_node_fetch, running_cluster
from tinykube.testing.daemon import wait_for

pytestmark = pytest.mark.root

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        command: [sh, -c, 'trap "exit 0" TERM; while :; do sleep 0.1; done']
"""


@pytest.fixture
def cluster(tmp_path):
    with running_cluster(tmp_path) as c:
        yield c


def running_by_node(cluster) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for pod in cluster.client.list("Pod", "default"):
        if pod.get("status", {}).get("phase") == "Running" and not pod["metadata"].get(
                "deletionTimestamp"):
            found.setdefault(pod["spec"].get("nodeName"), []).append(pod)
    return found


def test_agents_run_the_pods_bound_to_them_and_failed_nodes_are_drained(cluster, tmp_path):
    a, b = cluster.add_agent(), cluster.add_agent()
    apply = subprocess.run(
        [sys.executable, "-m", "tinykube.cli.main", "--socket",
         str(cluster.socket_of(1)), "apply", "-f", "-"], input=DEPLOYMENT, text=True,
        capture_output=True, check=True)
    assert "created" in apply.stdout
    wait_for(lambda: {n: len(p) for n, p in running_by_node(cluster).items()} ==
             {a.name: 2, b.name: 2}, timeout=60, what="2 running pods per node")
    for node_name, agent in ((a.name, a), (b.name, b)):
        for pod in running_by_node(cluster)[node_name]:
            # Status came back through the API: an address from that node's own slice.
            assert ipaddress.ip_address(pod["status"]["podIP"]) in \
                ipaddress.ip_network(agent.cidr)
    # Agent a stops (its pods keep running, as a kubelet's do): Unknown, then drained.
    a.stop()
    wait_for(lambda: not cluster.node_ready(a.name), timeout=30, what=f"{a.name} not Ready")
    wait_for(lambda: {n: len(p) for n, p in running_by_node(cluster).items()
                      if n == b.name} == {b.name: 4}, timeout=60,
             what="a's pods replaced on b")
    node = cluster.client.get("Node", a.name, "default")
    (ready,) = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert (ready["status"], ready["reason"]) == ("Unknown", "NodeStatusUnknown")
    stuck = [p for p in cluster.client.list("Pod", "default")
             if p["spec"].get("nodeName") == a.name]
    assert stuck and all(p["metadata"].get("deletionTimestamp") for p in stuck)
    # a comes back: its kubelet finishes the deletions, and the node is Ready again.
    a.start()
    wait_for(lambda: cluster.node_ready(a.name), timeout=30, what=f"{a.name} Ready again")
    wait_for(lambda: not [p for p in cluster.client.list("Pod", "default")
                          if p["spec"].get("nodeName") == a.name], timeout=60,
             what="a's evicted pods finished by its agent")
    cluster.client.delete("Deployment", "web", "default")
    wait_for(lambda: not cluster.client.list("Pod", "default"), timeout=60,
             what="all pods gone")


def test_a_pod_fetches_over_http_from_a_pod_on_another_node(cluster):
    """Each agent in its own node netns: the client pod's packets leave node a through the
    host-gw route to b's slice via b's node address, cross the cluster bridge, and reach the
    server pod with the client's own pod IP as their source."""
    a, b = cluster.add_agent(), cluster.add_agent()
    assert_cross_node_fetch(cluster, client_node=a, server_node=b)
