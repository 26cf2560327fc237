"""A StatefulSet on agents: a pod's claim directory lives on the node that first ran it
(`<agent root>/volumes/<ns>/<claim>/`), the claim is bound to that node, and the recreated
`web-1` waits Pending while that node is down (never a second copy elsewhere), then goes
back there and finds its data. Restarting the server and the agents loses nothing."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.integration.clusternet import running_cluster
from tinykube.cluster.placement import SELECTED_NODE
from tinykube.testing.daemon import wait_for

pytestmark = pytest.mark.root

STATEFUL_SET = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  replicas: 2
  serviceName: web
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
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
"""


@pytest.fixture
def cluster(tmp_path):
    with running_cluster(tmp_path, grace=3.0, eviction=600.0) as c:
        yield c


def pod(cluster, name):
    try:
        return cluster.client.get("Pod", name, "default")
    except Exception:  # noqa: BLE001 - not there (yet)
        return None


def running_on(cluster, name):
    p = pod(cluster, name)
    if p and p.get("status", {}).get("phase") == "Running" and not p["metadata"].get(
            "deletionTimestamp"):
        return p["spec"]["nodeName"]
    return None


def test_statefulset_claims_stay_on_their_node_and_a_restart_loses_nothing(cluster):
    agents = {a.name: a for a in (cluster.add_agent(), cluster.add_agent())}
    subprocess.run([sys.executable, "-m", "tinykube.cli.main", "--socket",
                    str(cluster.socket_of(1)), "apply", "-f", "-"], input=STATEFUL_SET,
                   text=True, capture_output=True, check=True, timeout=60)
    home = wait_for(lambda: running_on(cluster, "web-1"), timeout=60, what="web-1 running")
    wait_for(lambda: running_on(cluster, "web-0"), timeout=60, what="web-0 running")
    claim = cluster.client.get("PersistentVolumeClaim", "data-web-1", "default")
    assert claim["metadata"]["annotations"][SELECTED_NODE] == home
    starts = agents[home].root / "volumes" / "default" / "data-web-1" / "starts"
    wait_for(lambda: starts.exists() and starts.read_text() == "web-1\n", timeout=30,
             what=f"web-1's data on {home}")

    # Its node goes down; an admin force-deletes web-1 (its kubelet cannot finish a graceful
    # deletion). The StatefulSet recreates it, and it waits for its node.
    agents[home].stop(signal.SIGKILL)
    wait_for(lambda: not cluster.node_ready(home), timeout=30, what=f"{home} not Ready")
    old_uid = pod(cluster, "web-1")["metadata"]["uid"]
    cluster.client.delete("Pod", "web-1", "default", grace_period=0)

    def recreated_pending():
        p = pod(cluster, "web-1")
        if not p or p["metadata"]["uid"] == old_uid:
            return None
        conditions = p.get("status", {}).get("conditions", [])
        return [c for c in conditions if c.get("reason") == "Unschedulable"]
    (condition,) = wait_for(recreated_pending, timeout=30, what="web-1 Pending, unschedulable")
    assert "volume node affinity conflict" in condition["message"]
    assert "nodeName" not in pod(cluster, "web-1")["spec"]
    # The killed agent's old web-1 process is still running on its node: the second copy
    # must not start anywhere, and the only node up never got it.
    assert running_on(cluster, "web-1") is None

    # Its node comes back: web-1 goes there and finds its data.
    agents[home].start()
    assert wait_for(lambda: running_on(cluster, "web-1"), timeout=60,
                    what="web-1 running again") == home
    wait_for(lambda: starts.read_text() == "web-1\nweb-1\n", timeout=30,
             what="web-1 started a second time on the same data")

    # Everything restarts: nothing is lost, the pods keep running and are re-adopted.
    before = {p["metadata"]["name"]: p["metadata"]["uid"]
              for p in cluster.client.list("Pod", "default")}
    for agent in agents.values():
        agent.stop()
    cluster.servers[0].stop()
    cluster.servers[0].start()
    wait_for(lambda: cluster.client.healthy(), timeout=30, what="server back")
    for agent in agents.values():
        agent.start()
    for name in agents:
        wait_for(lambda name=name: cluster.node_ready(name), timeout=30, what=f"{name} Ready")
    after = {p["metadata"]["name"]: p["metadata"]["uid"]
             for p in cluster.client.list("Pod", "default")}
    assert after == before
    assert cluster.client.get("StatefulSet", "web", "default")["spec"]["replicas"] == 2
    wait_for(lambda: running_on(cluster, "web-0") and running_on(cluster, "web-1") == home,
             timeout=30, what="both pods running after the restart")
    assert starts.read_text() == "web-1\nweb-1\n"  # re-adopted, not restarted
    cluster.client.delete("StatefulSet", "web", "default")
    wait_for(lambda: not cluster.client.list("Pod", "default"), timeout=60,
             what="all pods gone")
