"""A tinykube cluster of real processes on this machine for tests: `tinykube server` and
`tinykube agent`s (each with its own bridge, pod CIDR slice, root and cgroup subtree), torn
down with `tinykube reset --purge` per node so nothing is left."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tinykube.client import Client
from tinykube.testing.daemon import free_port, wait_for


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tinykube.cli.main", *args]


@dataclass
class Proc:
    name: str
    args: list[str]
    log: Path
    process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Agent(Proc):
    root: Path = Path()
    run_dir: Path = Path()
    bridge: str = ""
    cidr: str = ""
    subtree: str = ""

    def reset(self) -> None:
        subprocess.run(_cli("--socket", str(self.run_dir / "none.sock"), "reset", "--purge",
                            "--root", str(self.root), "--run-dir", str(self.run_dir),
                            "--bridge", self.bridge, "--pod-cidr", self.cidr,
                            "--cgroup-subtree", self.subtree), check=True,
                       capture_output=True, timeout=120)


@dataclass
class LocalCluster:
    base: Path
    grace: float = 3.0
    eviction: float = 3.0
    tag: str = field(default_factory=lambda: f"{os.getpid() % 100:02d}{random.randrange(100):02d}")
    store: str | None = None  # --store for the servers (etcd://… lets several share it)
    leader_lease: float = 3.0
    servers: list[Proc] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listens: list[str] = []
        self.root = self.base / "server1"
        self.octet = random.randrange(100, 200)
        self.client = Client(self.socket_of(1))

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
        listen = f"127.0.0.1:{free_port()}"
        self.listens.append(listen)
        server = Proc(f"server{index}", _cli(
            "--socket", str(self.socket_of(index)), "server", "--root", str(root),
            "--run-dir", str(self.base / f"server{index}-run"), "--listen", listen,
            "--identity", f"server{index}",
            "--node-monitor-grace-period", str(self.grace),
            "--pod-eviction-timeout", str(self.eviction),
            "--leader-elect-lease-duration", str(self.leader_lease),
            *(["--store", self.store] if self.store else [])), self.base / f"server{index}.log")
        self.servers.append(server)
        server.start()
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
                      run_dir=self.base / f"{name}-run", bridge=name,
                      cidr=f"10.{self.octet}.{index}.0/24", subtree=f"tinykube-{name}")
        token = (self.root / "pki" / "node.token").read_text().strip()
        agent.args = _cli(
            "agent", "--server", self.urls, "--token", token,
            "--certificate-authority", str(self.root / "pki" / "ca.crt"),
            "--node-name", name, "--pod-cidr", agent.cidr, "--root", str(root),
            "--cluster-cidr", f"10.{self.octet}.0.0/16",
            "--run-dir", str(agent.run_dir), "--bridge", name,
            "--cgroup-subtree", agent.subtree, "--node-lease-seconds", "2")
        self.agents.append(agent)
        agent.start()
        wait_for(lambda: self.node_ready(name), timeout=30, what=f"node {name} Ready")
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
            for agent in self.agents:
                agent.reset()
