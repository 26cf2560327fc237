"""A tinykube cluster of real processes on this machine: `tinykube server`s and `tinykube
agent`s, each agent in a node network namespace of its own (tinykube/cluster/nodenet.py)
with its own bridge, pod CIDR slice, root and cgroup subtree, optionally on a real etcd on
loopback; torn down with `tinykube reset --purge` per node (inside its netns), then the node
netns and the cluster bridge, so nothing is left. The multi-node tests and
`scripts/cluster up N` / `down` both use it.

`python -m tinykube.cluster.local up N DIR` starts etcd, a server and N agents detached,
records them in DIR/cluster.json and writes DIR/admin.kubeconfig; `down DIR` stops exactly
those processes (by pid) and removes everything they made.

The servers listen on the cluster bridge's host address, which the agents reach over their
node network; pods on different nodes reach each other through the host-gw routes each
agent installs in its own netns (tinykube/cluster/routes.py).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .nodenet import (
    claim_node_network,
    command_in,
    node_netns_name,
    remove_bridge,
    remove_node,
)

from tinykube.client import Client
from tinykube.testing.daemon import free_port, stop_process, wait_for


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tinykube.cli.main", *args]


@dataclass
class Proc:
    name: str
    args: list[str]
    log: Path
    process: subprocess.Popen | None = None

    def start(self, detached: bool = False) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL,
                                            start_new_session=detached)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.process, sig)


@dataclass
class Agent(Proc):
    root: Path = Path()
    run_dir: Path = Path()
    bridge: str = ""
    cidr: str = ""
    subtree: str = ""
    netns: str = ""  # its node network namespace
    host_veth: str = ""  # its link to the cluster bridge
    address: str = ""  # its node address (InternalIP)

    def start(self, detached: bool = False) -> None:
        agent_args = self.args
        self.args = command_in(self.netns, agent_args)
        try:
            super().start(detached)
        finally:
            self.args = agent_args

    def reset(self) -> None:
        """`tinykube reset --purge` inside the node netns (its bridge, veths and routes are
        there), then the node netns and its veth."""
        try:
            subprocess.run(command_in(self.netns, _cli(
                "--socket", str(self.run_dir / "none.sock"), "reset", "--purge",
                "--root", str(self.root), "--run-dir", str(self.run_dir),
                "--bridge", self.bridge, *(["--pod-cidr", self.cidr] if self.cidr else []),
                "--cgroup-subtree", self.subtree)), check=True, capture_output=True,
                timeout=120)
        finally:
            remove_node(self.netns, self.host_veth)


@dataclass
class LocalCluster:
    base: Path
    grace: float = 3.0
    eviction: float = 3.0
    tag: str = field(default_factory=lambda: f"{os.getpid() % 100:02d}{random.randrange(100):02d}")
    store: str | None = None  # --store for the servers (etcd://… lets several share it)
    leader_lease: float = 3.0
    node_lease: int = 2
    detached: bool = False  # processes outlive this one (scripts/cluster up)
    servers: list[Proc] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listens: list[str] = []
        self.root = self.base / "server1"
        self.octet = random.randrange(100, 200)
        self.cluster_cidr = f"10.{self.octet}.0.0/16"
        self.client = Client(self.socket_of(1))
        self.node_net = claim_node_network(f"tkncl{self.tag}")

    def socket_of(self, index: int) -> Path:
        return self.base / f"server{index}.sock"

    @property
    def urls(self) -> str:
        return ",".join(f"https://{listen}" for listen in self.listens)

    def start_server(self) -> Proc:
        """One more server (servers after the first share its CA and tokens, as servers of
        one cluster must)."""
        index = len(self.servers) + 1
        root = self.base / f"server{index}"
        if index > 1:
            shutil.copytree(self.root / "pki", root / "pki")
        listen = f"{self.node_net.gateway}:{free_port()}"  # where agents reach it
        self.listens.append(listen)
        server = Proc(f"server{index}", _cli(
            "--socket", str(self.socket_of(index)), "server", "--root", str(root),
            "--run-dir", str(self.base / f"server{index}-run"), "--listen", listen,
            "--identity", f"server{index}",
            "--node-monitor-grace-period", str(self.grace),
            "--pod-eviction-timeout", str(self.eviction),
            "--leader-elect-lease-duration", str(self.leader_lease),
            "--cluster-cidr", self.cluster_cidr,
            *(["--store", self.store] if self.store else [])), self.base / f"server{index}.log")
        self.servers.append(server)
        server.start(self.detached)
        client = Client(self.socket_of(index))
        wait_for(lambda: self.socket_of(index).exists() and client.healthy(), timeout=30,
                 what=f"server{index} up")
        client.close()
        return server

    def add_agent(self) -> Agent:
        index = len(self.agents) + 1
        name = f"tkn{self.tag}{index}"
        root = self.base / name
        agent = Agent(name, [], self.base / f"{name}.log", root=root,
                      run_dir=self.base / f"{name}-run", bridge=name, cidr="",
                      subtree=f"tinykube-{name}", netns=node_netns_name(name),
                      host_veth=f"tknh{self.tag}{index}",
                      address=self.node_net.address_of(index))
        token = (self.root / "pki" / "node.token").read_text().strip()
        agent.args = _cli(
            "agent", "--server", self.urls, f"--token={token}",
            "--certificate-authority", str(self.root / "pki" / "ca.crt"),
            "--node-name", name, "--root", str(root),  # its slice: the server's node IPAM
            "--cluster-cidr", self.cluster_cidr, "--node-ip", agent.address,
            "--run-dir", str(agent.run_dir), "--bridge", name,
            "--cgroup-subtree", agent.subtree, "--node-lease-seconds", str(self.node_lease))
        self.agents.append(agent)
        self.node_net.add_node(agent.netns, agent.host_veth, agent.address)
        agent.start(self.detached)
        wait_for(lambda: self.node_ready(name), timeout=30, what=f"node {name} Ready")
        agent.cidr = self.client.get("Node", name, "default")["spec"]["podCIDR"]
        return agent

    def node_ready(self, name: str) -> bool:
        try:
            node = self.client.get("Node", name, "default")
        except Exception:  # noqa: BLE001 - not registered yet
            return False
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in node.get("status", {}).get("conditions", []))

    def cleanup(self) -> None:
        try:
            for agent in self.agents:
                agent.stop()
            for server in self.servers:
                server.stop()
        finally:
            self.client.close()
            try:
                for agent in self.agents:
                    agent.reset()
            finally:
                for agent in self.agents:
                    remove_node(agent.netns, agent.host_veth)
                self.node_net.remove()


# ---- scripts/cluster ------------------------------------------------------------------------

STATE_FILE = "cluster.json"


def up(count: int, base: Path) -> Path:
    """Start etcd, a server and `count` agents detached; the admin kubeconfig's path."""
    import json

    from tinykube.testing.etcd import etcd_for

    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (base / STATE_FILE).exists():
        raise SystemExit(f"a cluster is already up in {base}: `scripts/cluster down` first")
    etcd = etcd_for(base / "etcd", detached=True)
    etcd.start()
    state: dict = {"etcd": etcd.process.pid if etcd.process else None, "servers": [],
                   "agents": []}
    cluster = LocalCluster(base, store=etcd.store_flag, grace=40.0, eviction=300.0,
                           leader_lease=15.0, node_lease=40, detached=True)
    try:
        cluster.start_server()
        for _ in range(count):
            cluster.add_agent()
    finally:
        state["servers"] = [s.process.pid for s in cluster.servers if s.process]
        state["agents"] = [{"pid": a.process.pid if a.process else None, "root": str(a.root),
                            "run_dir": str(a.run_dir), "bridge": a.bridge, "cidr": a.cidr,
                            "subtree": a.subtree, "netns": a.netns,
                            "host_veth": a.host_veth} for a in cluster.agents]
        state["cluster_bridge"] = cluster.node_net.bridge
        state["server_roots"] = [str(base / f"server{i + 1}") for i in range(len(cluster.servers))]
        (base / STATE_FILE).write_text(json.dumps(state, indent=1))
    kubeconfig = base / "admin.kubeconfig"
    result = subprocess.run(_cli("--socket", str(cluster.socket_of(1)), "kubeconfig"),
                            capture_output=True, text=True, check=True, timeout=30)
    kubeconfig.write_text(result.stdout)
    kubeconfig.chmod(0o600)
    cluster.client.close()
    return kubeconfig


def down(base: Path) -> None:
    """Stop what `up` started (by pid) and remove every host resource and file it made."""
    import json

    state_path = base / STATE_FILE
    if not state_path.exists():
        raise SystemExit(f"no cluster is up in {base}")
    state = json.loads(state_path.read_text())
    pids = [a["pid"] for a in state["agents"]] + state["servers"] + [state["etcd"]]
    for pid in pids:
        _stop_pid(pid)
    try:
        for a in state["agents"]:
            Agent(Path(a["root"]).name, [], base / "x.log", root=Path(a["root"]),
                  run_dir=Path(a["run_dir"]), bridge=a["bridge"], cidr=a["cidr"],
                  subtree=a["subtree"], netns=a["netns"], host_veth=a["host_veth"]).reset()
    finally:
        for a in state["agents"]:
            remove_node(a["netns"], a["host_veth"])
        remove_bridge(state["cluster_bridge"])
    shutil.rmtree(base)


def _stop_pid(pid: int | None) -> None:
    import time

    if not pid:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "up" and argv[1].isdigit() and int(argv[1]) > 0:
        print(up(int(argv[1]), Path(argv[2])))
        return 0
    if len(argv) == 2 and argv[0] == "down":
        down(Path(argv[1]))
        return 0
    print("usage: python -m tinykube.cluster.local up N DIR | down DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
