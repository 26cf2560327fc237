"""A tinykube cluster of real processes on this machine for tests: `tinykube server` and
`tinykube agent`s (each with its own bridge, pod CIDR slice, root and cgroup subtree), torn
down with `tinykube reset --purge` per node so nothing is left."""

from __future__ import annotations

import os
import random
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
    server: Proc | None = None
    agents: list[Agent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listen = f"127.0.0.1:{free_port()}"
        self.root = self.base / "server"
        self.socket = self.base / "server.sock"
        self.client = Client(self.socket)
        self.octet = random.randrange(100, 200)

    def start_server(self) -> None:
        self.server = Proc("server", _cli(
            "--socket", str(self.socket), "server", "--root", str(self.root),
            "--run-dir", str(self.base / "server-run"), "--listen", self.listen,
            "--node-monitor-grace-period", str(self.grace),
            "--pod-eviction-timeout", str(self.eviction),
            "--leader-elect-lease-duration", "3"), self.base / "server.log")
        self.server.start()
        wait_for(lambda: self.socket.exists() and self.client.healthy(), timeout=30,
                 what="server up")

    def add_agent(self) -> Agent:
        index = len(self.agents) + 1
        name = f"tkn{self.tag}{index}"
        root = self.base / name
        agent = Agent(name, [], self.base / f"{name}.log", root=root,
                      run_dir=self.base / f"{name}-run", bridge=name,
                      cidr=f"10.{self.octet}.{index}.0/24", subtree=f"tinykube-{name}")
        token = (self.root / "pki" / "node.token").read_text().strip()
        agent.args = _cli(
            "agent", "--server", f"https://{self.listen}", "--token", token,
            "--certificate-authority", str(self.root / "pki" / "ca.crt"),
            "--node-name", name, "--pod-cidr", agent.cidr, "--root", str(root),
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
            if self.server:
                self.server.stop()
        finally:
            self.client.close()
            for agent in self.agents:
                agent.reset()
