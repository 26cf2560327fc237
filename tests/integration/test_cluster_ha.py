"""Issue 21's cluster on one machine: a real etcd on loopback, two `tinykube server`s on it,
three `tinykube agent`s, each in its own node netns. A 6-replica Deployment spreads 2/2/2; a
pod on one node fetches over HTTP by IP from a pod on another; killing the leading server,
the other takes over within the lease time and a rollout started meanwhile completes;
killing an agent, its pods are replaced on the other nodes after the (short) timeout."""

from __future__ import annotations

import datetime
import signal

import pytest

from tests.integration.clusternet import assert_cross_node_fetch, running_cluster, tk
from tinykube.client import Client
from tinykube.cluster.election import LEADER_LEASE_NAME, LEADER_LEASE_NAMESPACE
from tinykube.testing.daemon import wait_for

pytestmark = pytest.mark.root


def deployment(version: str) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 6
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        env: [{{name: V, value: "{version}"}}]
        command: [sh, -c, 'trap "exit 0" TERM; while :; do sleep 0.1; done']
"""


@pytest.fixture
def cluster(tmp_path, etcd):
    with running_cluster(tmp_path, servers=2, store=etcd.store_flag, grace=3.0,
                         eviction=3.0) as c:
        yield c


def ready_by_node(client: Client, version: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pod in client.list("Pod", "default"):
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in pod.get("status", {}).get("conditions", []))
        if (ready and not pod["metadata"].get("deletionTimestamp")
                and pod["spec"]["containers"][0]["env"][0]["value"] == version):
            node = pod["spec"]["nodeName"]
            counts[node] = counts.get(node, 0) + 1
    return counts


def holder(client: Client) -> str | None:
    try:
        lease = client.get("Lease", LEADER_LEASE_NAME, LEADER_LEASE_NAMESPACE)
    except Exception:  # noqa: BLE001 - a server going away mid-request: ask again
        return None
    return lease["spec"].get("holderIdentity")


def lease_time(client: Client, field: str) -> float:
    """A MicroTime of the leader Lease, as seconds since the epoch."""
    lease = client.get("Lease", LEADER_LEASE_NAME, LEADER_LEASE_NAMESPACE)
    stamp = lease["spec"][field].replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(stamp).timestamp()


def test_two_servers_three_agents_leader_and_agent_failover(cluster):
    agents = [cluster.add_agent() for _ in range(3)]
    tk(cluster, "apply", "-f", "-", input=deployment("1"))
    wait_for(lambda: ready_by_node(cluster.client, "1") == {a.name: 2 for a in agents},
             timeout=90, what="6 ready pods spread 2/2/2")
    # Every agent is in its own node netns: a pod on the first node fetches from a pod on
    # the third by IP, through the host-gw route between them.
    assert_cross_node_fetch(cluster, client_node=agents[0], server_node=agents[2])

    leader = holder(cluster.client)
    assert leader in ("server1", "server2")
    index = int(leader[-1])
    other = 3 - index
    survivor = Client(cluster.socket_of(other))
    cluster.client.close()
    cluster.client = survivor
    cluster.servers[index - 1].stop(signal.SIGKILL)
    last_renewal = lease_time(survivor, "renewTime")  # the dead leader's last
    tk(cluster, "apply", "-f", "-", server=other, input=deployment("2"))  # no leader yet
    wait_for(lambda: holder(survivor) == f"server{other}", timeout=30,
             what=f"server{other} leading")
    # Timed by the Lease's own record (one clock, this machine's), so the CLI calls and
    # polling of a loaded test run do not count: within the lease time (3 s) plus one
    # retry period (0.75 s) and the candidate's scheduling slack.
    takeover = lease_time(survivor, "acquireTime") - last_renewal
    assert takeover <= cluster.leader_lease + 2.0, f"takeover took {takeover:.1f} s"
    wait_for(lambda: sum(ready_by_node(survivor, "2").values()) == 6
             and not ready_by_node(survivor, "1"), timeout=120,
             what="the rollout to v2 complete")
    print(f"\nleader takeover: {takeover:.1f} s")

    # An agent dies: its pods are replaced on the two others after the eviction timeout.
    victim = agents[2]
    victim.stop(signal.SIGKILL)
    wait_for(lambda: set(ready_by_node(survivor, "2")) == {agents[0].name, agents[1].name}
             and sum(ready_by_node(survivor, "2").values()) == 6, timeout=60,
             what="the dead node's pods replaced elsewhere")
    survivor.delete("Deployment", "web", "default")
    # The dead node's pods stay Terminating (no kubelet to finish them): force them.
    for pod in survivor.list("Pod", "default"):
        if pod["spec"].get("nodeName") == victim.name:
            survivor.delete("Pod", pod["metadata"]["name"], "default", grace_period=0)
    wait_for(lambda: not survivor.list("Pod", "default"), timeout=60, what="all pods gone")
