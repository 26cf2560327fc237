"""A real etcd for tests and local clusters: Debian's `etcd` (etcd-server) on loopback, on
free ports, its data under a directory the caller owns, stopped by its pid.

`running_etcd(data_dir)` is a context manager yielding an `Etcd` (`endpoint`, `url`,
`store_flag`); the process is killed and waited for on exit, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

START_SECONDS = 30.0


@dataclass
class Etcd:
    process: subprocess.Popen
    client_port: int
    data_dir: Path

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def store_flag(self) -> str:
        return f"etcd://{self.endpoint}"

    def call(self, path: str, body: dict) -> dict:
        """One JSON gateway request (tests use it to compact or read etcd directly)."""
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def etcd_binary() -> str | None:
    return shutil.which("etcd")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@contextlib.contextmanager
def running_etcd(data_dir: Path, name: str = "tk-etcd") -> Iterator[Etcd]:
    binary = etcd_binary()
    if binary is None:
        raise RuntimeError("etcd is not installed (scripts/setup installs etcd-server)")
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    client_port, peer_port = _free_ports(2)
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    with open(data_dir.parent / f"{data_dir.name}.log", "ab") as log:
        process = subprocess.Popen(
            [binary, "--name", name, "--data-dir", str(data_dir),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"{name}={peer}", "--initial-cluster-state", "new",
             "--logger", "zap", "--log-level", "warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    etcd = Etcd(process, client_port, data_dir)
    try:
        _wait_ready(etcd)
        yield etcd
    finally:
        etcd.stop()


def _wait_ready(etcd: Etcd) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        if etcd.process.poll() is not None:
            raise RuntimeError(f"etcd exited with {etcd.process.returncode} at start "
                               f"(log: {etcd.data_dir}.log)")
        try:
            etcd.call("/v3/kv/range", {"key": "AA=="})
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd did not answer within {START_SECONDS:.0f} s") from None
            time.sleep(0.05)
