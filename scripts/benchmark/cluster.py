"""Cluster mode (issue 21): a real etcd on loopback, two `tinykube server`s on it and three
`tinykube agent`s on this machine, each in its own node netns (tinykube/cluster/local.py,
as the multi-node tests).

- Pod start: create a Pod through the API → Running as reported by its agent (scheduler bind,
  agent watch, start, status write back through the API). Polled every 20 ms.
- Scale-out: a ReplicaSet of N pods (300; quick: 30) → all Running, spread over the agents.
- Failover: SIGKILL of the leading server → the other holds the leader Lease (lease 3 s).
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from pathlib import Path

from . import manifests
from .context import Context
from .report import Section
from .stats import Summary

from tinykube.cluster.election import LEADER_LEASE_NAME, LEADER_LEASE_NAMESPACE
from tinykube.cluster.local import LocalCluster
from tinykube.model.errors import NotFound
from tinykube.testing.daemon import wait_for
from tinykube.testing.etcd import running_etcd

POLL = 0.02



def _running(client, namespace: str) -> list[dict]:
    return [p for p in client.list("Pod", namespace)
            if p.get("status", {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")]


def run(ctx: Context) -> Section:
    section = Section("Cluster: 1 etcd, 2 servers, 3 agents (one machine)")
    base = Path(tempfile.mkdtemp(prefix="tkbench-cluster-", dir="/run"))
    with running_etcd(base / "etcd") as etcd:
        cluster = LocalCluster(base, store=etcd.store_flag, grace=40.0, eviction=300.0)
        try:
            cluster.start_server()
            cluster.start_server()
            for _ in range(3):
                cluster.add_agent()
            client = cluster.client
            ns = manifests.NAMESPACE
            samples = []
            for i in range(ctx.repeat):
                name = f"cstart-{i}"
                began = time.monotonic()
                client.create(manifests.pod(name, {"bench": "cstart"}))
                wait_for(lambda n=name: any(p["metadata"]["name"] == n
                                         for p in _running(client, ns)), 60, POLL, name)
                samples.append(time.monotonic() - began)
                client.delete("Pod", name, ns, grace_period=0)
            section.add("pod start through server + agent: create → Running",
                        Summary.of(samples, "s"))
            wait_for(lambda: not client.list("Pod", ns), 60, POLL, "start pods gone")

            count = 30 if ctx.quick else 300
            began = time.monotonic()
            client.create(manifests.replica_set("cscale", count))
            wait_for(lambda: len(_running(client, ns)) == count, 600, POLL, f"{count} pods running")
            took = time.monotonic() - began
            spread = sorted(sum(1 for p in _running(client, ns)
                                if p["spec"]["nodeName"] == a.name) for a in cluster.agents)
            section.value(f"scale-out: ReplicaSet of {count} → all Running over 3 agents",
                          took, "s", note=f"per node {spread}")
            client.delete("ReplicaSet", "cscale", ns)
            for pod in client.list("Pod", ns):
                try:
                    client.delete("Pod", pod["metadata"]["name"], ns, grace_period=0)
                except NotFound:
                    pass  # the garbage collector got there first
            wait_for(lambda: not client.list("Pod", ns), 300, POLL, "scale pods gone")

            lease = client.get("Lease", LEADER_LEASE_NAME, LEADER_LEASE_NAMESPACE)
            leader = int(lease["spec"]["holderIdentity"][-1])
            other = 3 - leader
            from tinykube.client import Client

            survivor = Client(cluster.socket_of(other))
            cluster.servers[leader - 1].stop(signal.SIGKILL)
            began = time.monotonic()

            def took_over() -> bool:
                try:
                    held = survivor.get("Lease", LEADER_LEASE_NAME, LEADER_LEASE_NAMESPACE)
                except Exception:  # noqa: BLE001 - ask again
                    return False
                return held["spec"].get("holderIdentity") == f"server{other}"
            wait_for(took_over, 60, POLL, "leader takeover")
            section.value("failover: leader SIGKILL → other server leads "
                          f"(lease {cluster.leader_lease:.0f} s)", time.monotonic() - began, "s")
            survivor.close()
        finally:
            cluster.cleanup()
    shutil.rmtree(base, ignore_errors=True)  # etcd's data, logs, the nodes' roots (~60 MB)
    return section
