"""The node network of a local cluster: agents in node netns `tkn-<node>` on a cluster bridge,
and nothing left behind by the cluster's teardown or by `tinykube reset`."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from pyroute2 import IPRoute, netns

from tinykube.cluster.local import LocalCluster
from tinykube.cluster.nodenet import (
    NodeNetwork,
    choose_subnet,
    command_in,
    in_netns,
    links_in,
    remove_node,
    routes_in,
)
from tinykube.cluster.routes import ROUTE_PROTO
from tinykube.testing.daemon import wait_for

pytestmark = pytest.mark.root

POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    command: [sh, -c, 'trap "exit 0" TERM; while :; do sleep 0.1; done']
"""


def host_links() -> set[str]:
    with IPRoute() as ipr:
        return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}


def cgroups_named(fragment: str) -> list[Path]:
    root = Path("/sys/fs/cgroup")  # v1 controllers and cgroup2's unified/
    return list(root.glob(f"*/{fragment}*")) + list(root.glob(f"*/*/{fragment}*"))


def test_cluster_teardown_leaves_no_netns_link_route_or_cgroup(tmp_path):
    cluster = LocalCluster(tmp_path)
    try:
        cluster.start_server()
        a, b = cluster.add_agent(), cluster.add_agent()
        for name, agent in (("p-a", a), ("p-b", b)):
            subprocess.run([sys.executable, "-m", "tinykube.cli.main", "--socket",
                            str(cluster.socket_of(1)), "apply", "-f", "-"],
                           input=POD.format(name=name, node=agent.name), text=True,
                           capture_output=True, check=True, timeout=60)
        wait_for(lambda: all(cluster.client.get("Pod", n, "default").get("status", {}).get(
            "phase") == "Running" for n in ("p-a", "p-b")), timeout=60, what="both pods up")
        # What the cluster made: node netns with their pod bridges and host-gw routes, the
        # cluster bridge and the nodes' veths on the host.
        assert {a.netns, b.netns} <= set(netns.listnetns())
        assert {cluster.node_net.bridge, a.host_veth, b.host_veth} <= host_links()
        assert a.bridge in links_in(a.netns)
        wait_for(lambda: (b.cidr, b.address, ROUTE_PROTO) in routes_in(a.netns), timeout=30,
                 what="a's route to b's slice")
    finally:
        cluster.cleanup()
    tag = cluster.tag
    assert not [n for n in netns.listnetns() if tag in n]
    assert not [name for name in host_links() if tag in name]
    assert not cgroups_named(f"tinykube-tkn{tag}")
    assert not (tmp_path / f"tkn{tag}1").exists()


def test_reset_removes_host_gw_routes(tmp_path):
    """`tinykube reset` in a node's netns removes the host-gw routes (protocol 0x74) an agent
    killed with SIGKILL left behind, and no other route."""
    tag = secrets.token_hex(2)
    net = NodeNetwork(f"tkncl{tag}", choose_subnet())
    node, veth = f"tkn-rst{tag}", f"tknhrst{tag}"
    net.create()
    try:
        net.add_node(node, veth, net.address_of(1))
        ours = ("10.199.3.0/24", net.address_of(2), ROUTE_PROTO)
        foreign = ("10.199.4.0/24", net.address_of(3), 4)  # static: not ours

        def add() -> None:
            with IPRoute() as ipr:
                for dst, gateway, proto in (ours, foreign):
                    ipr.route("add", dst=dst, gateway=gateway, proto=proto)
        in_netns(node, add)
        assert {ours, foreign} <= set(routes_in(node))
        result = subprocess.run(command_in(node, [
            sys.executable, "-m", "tinykube.cli.main", "--socket", str(tmp_path / "none.sock"),
            "reset", "--root", str(tmp_path / "root"), "--run-dir", str(tmp_path / "run"),
            "--bridge", f"tkrst{tag}", "--pod-cidr", "10.199.9.0/24",
            "--cgroup-subtree", f"tinykube-rst{tag}"]),
            capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        routes = routes_in(node)
        assert ours not in routes
        assert foreign in routes
        assert f"removed route {ours[0]} via {ours[1]}" in result.stdout
    finally:
        remove_node(node, veth)
        net.remove()


def test_a_cluster_never_shares_another_clusters_node_subnet(monkeypatch):
    """Two local clusters starting together may pick the same /24: the one that finds the
    other's bridge routing it picks again, and leaves the other's bridge alone."""
    from tinykube.cluster import nodenet

    tag = secrets.token_hex(2)
    taken = choose_subnet()
    other = NodeNetwork(f"tkncl{tag}a", taken)
    other.create()
    picks = iter([taken])
    monkeypatch.setattr(nodenet, "choose_subnet", lambda: next(picks, None) or choose_subnet())
    try:
        mine = nodenet.claim_node_network(f"tkncl{tag}b")
        try:
            assert mine.subnet != taken
            assert mine.sole_route() and other.sole_route()
        finally:
            mine.remove()
        assert other.bridge in host_links()
    finally:
        other.remove()


def test_cluster_up_and_down_leave_nothing_behind(tmp_path):
    """`scripts/cluster up 2` (what it execs): etcd, a server and two agents in node netns,
    Ready at addresses on the cluster bridge; `down` stops those processes and removes every
    netns, link, cgroup and file they made."""
    import json
    import os

    from tinykube.client import Client
    from tinykube.cluster import local

    base = tmp_path / "cluster"
    try:
        kubeconfig = local.up(2, base)
        state = json.loads((base / local.STATE_FILE).read_text())
        bridge = state["cluster_bridge"]
        tag = bridge.removeprefix("tkncl")
        assert kubeconfig.exists() and bridge in host_links()
        client = Client(base / "server1.sock")
        try:
            nodes = client.list("Node", "default")
        finally:
            client.close()
        assert sorted(n["metadata"]["name"] for n in nodes) == [f"tkn{tag}1", f"tkn{tag}2"]
        for agent in state["agents"]:
            assert agent["netns"] in netns.listnetns()
            assert agent["bridge"] in links_in(agent["netns"])  # its pod bridge: in there
            assert agent["bridge"] not in host_links()
        pids = [state["etcd"], *state["servers"], *(a["pid"] for a in state["agents"])]
    finally:
        if (base / local.STATE_FILE).exists():
            local.down(base)
    assert not base.exists()
    assert not [n for n in netns.listnetns() if tag in n]
    assert not [name for name in host_links() if tag in name]
    assert not cgroups_named(f"tinykube-tkn{tag}")
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or \
            Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", f"pid {pid} left running"
