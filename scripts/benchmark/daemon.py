"""A tinykube daemon of the benchmark's own: its root, run dir, bridge, CIDR, cgroup subtree.

Names never collide with a user's daemon (`tk0`, 10.88/16, `tinykube`) or the test suite's
(`tkd*`, 10.100-199.x/24, `tinykube-test-*`): bridge `tkbench`, 10.234.0.0/22 (1022
addresses, enough for 500 pods and their replacements), subtree `tinykube-bench`. Each
measurement that needs a clean slate starts a fresh daemon on a fresh root, and `purge()`
runs `tinykube reset --purge` so nothing is left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from . import flamegraph

from tinykube.client import Client
from tinykube.testing.daemon import stop_process

# Two engineers benchmarking side by side each set TINYKUBE_BENCH_INSTANCE (1..3) and get
# names and addresses of their own; unset (0) gives the names below.
INSTANCE = int(os.environ.get("TINYKUBE_BENCH_INSTANCE") or 0)
if not 0 <= INSTANCE <= 3:
    raise SystemExit("TINYKUBE_BENCH_INSTANCE: must be within 0..3")
_SUFFIX = str(INSTANCE) if INSTANCE else ""
BRIDGE = f"tkbench{_SUFFIX}"
CIDR = f"10.234.{4 * INSTANCE}.0/22"
SUBTREE = f"tinykube-bench{_SUFFIX}"
# ClusterIPs apart from a user's daemon (10.96/16) and the tests' (10.200-249.x/24); the
# benchmark's DNS server refuses names outside the cluster (nothing leaves the machine).
SERVICE_CIDR = f"10.235.{4 * INSTANCE}.0/22"

# What runs the daemon, the CLI and the API server: this checkout, or (scripts/bench-ab) the
# checkout of another revision named by TINYKUBE_BENCH_TARGET, with its own .venv, driven by
# this checkout's benchmark code and client so both revisions are measured the same way.
_TARGET_ENV = os.environ.get("TINYKUBE_BENCH_TARGET")
TARGET = Path(_TARGET_ENV).resolve() if _TARGET_ENV else Path(__file__).resolve().parents[2]
PYTHON = str(TARGET / ".venv" / "bin" / "python") if _TARGET_ENV else sys.executable


class BenchDaemon:
    def __init__(self, base: Path | None = None, *, profile_file: Path | None = None,
                 warm_sandboxes: int | None = None, log_level: str | None = None) -> None:
        self.base = Path(base or tempfile.mkdtemp(prefix="tkbench-"))
        self.root = self.base / "root"
        self.run_dir = self.base / "run"
        self.socket = self.run_dir / "tinykube.sock"
        self.log_path = self.base / "daemon.log"
        self.profile_file = profile_file
        self.warm_sandboxes = warm_sandboxes  # None: the daemon's default pool
        self.process: subprocess.Popen[bytes] | None = None
        self.daemon_pid = 0  # the daemon's own pid (the process's child when under py-spy)
        self.client = Client(self.socket, timeout=120)
        self.started_at = 0.0  # time.monotonic() when the process was spawned
        self.spawned_wall = 0.0  # time.time() then: the log's clock
        self.log_offset = 0  # where this start's lines begin in the (appended) log
        self.answer_cpu = 0.0  # the daemon's CPU seconds when its API first answered
        self.log_level = log_level  # None: $TINYKUBE_LOG or WARNING

    def host_args(self) -> list[str]:
        return ["--root", str(self.root), "--run-dir", str(self.run_dir), "--bridge", BRIDGE,
                "--pod-cidr", CIDR, "--cgroup-subtree", SUBTREE]

    def command(self) -> list[str]:
        if self.profile_file is not None:
            entry = ["-m", "scripts.benchmark.profiled_daemon", str(self.profile_file)]
        else:
            entry = ["-m", "tinykube.cli.main"]
        return [PYTHON, *entry, "--socket", str(self.socket), "daemon",
                *self.host_args(), "--service-cidr", SERVICE_CIDR, "--dns-upstream", "none",
                # the unix socket only: a second daemon on the machine (a user's, another
                # benchmark's) holds 127.0.0.1:6443
                "--listen", "none",
                *([] if self.warm_sandboxes is None
                  else ["--warm-sandboxes", str(self.warm_sandboxes)])]

    @property
    def pid(self) -> int:
        assert self.process is not None and self.daemon_pid
        return self.daemon_pid

    def start(self, timeout: float = 60, flame: Path | None = None) -> float:
        """Start and wait until the API answers; returns seconds from spawn to answering.
        `flame`: run it under py-spy, whose flame graph goes there when the daemon stops."""
        env = {**os.environ, "TINYKUBE_LOG": self.log_level or os.environ.get("TINYKUBE_LOG",
                                                                             "WARNING")}
        command = self.command()
        if flame is not None:
            command = flamegraph.spawn_command(flame, command)
        with open(self.log_path, "ab") as log:
            self.log_offset = log.tell()
            self.spawned_wall = time.time()
            self.started_at = time.monotonic()
            self.process = subprocess.Popen(command, stdout=log,
                                            stderr=subprocess.STDOUT, env=env,
                                            cwd=TARGET)
        self.daemon_pid = 0 if flame is not None else self.process.pid
        deadline = self.started_at + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.process.returncode}: "
                                   + self.log_path.read_text()[-2000:])
            if not self.daemon_pid:
                self.daemon_pid = _child(self.process.pid)
            if self.daemon_pid and self.socket.exists() and self.client.healthy():
                answered = time.monotonic() - self.started_at
                self.answer_cpu = _cpu_seconds(self.daemon_pid)
                return answered
            time.sleep(0.005)  # the daemon's start-up, not a pod status: nothing to watch yet
        raise RuntimeError(f"daemon did not answer on {self.socket} within {timeout}s")

    def serving(self, timeout: float = 300) -> float:
        """Seconds from spawn to the daemon's "tinykube is serving" line (every part started:
        the node has re-adopted its pods, controllers and services run). Needs log level
        INFO; the line's time has the log's millisecond resolution."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as log:
                log.seek(self.log_offset)
                for line in log.read().decode(errors="replace").splitlines():
                    if "tinykube is serving on" in line:
                        at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                        return at - self.spawned_wall
            time.sleep(0.05)  # reading the daemon's log, not a pod status
        raise RuntimeError(f"daemon logged no 'serving' line within {timeout}s")

    def stop(self) -> None:
        """SIGTERM: the daemon stops supervising; pods keep running (re-adopted on start)."""
        self.client.close()
        if self.process is not None and self.daemon_pid not in (0, self.process.pid):
            # under py-spy: stop the daemon; py-spy writes its flame graph and exits
            try:
                os.kill(self.daemon_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                stop_process(self.process, signal.SIGINT)
        stop_process(self.process)
        self.process = None

    def purge(self) -> None:
        """Stop the daemon and remove everything it made (`tinykube reset --purge`)."""
        self.stop()
        subprocess.run([PYTHON, "-m", "tinykube.cli.main", "reset", "--purge",
                        *self.host_args()], capture_output=True, text=True, check=True,
                       cwd=TARGET)
        shutil.rmtree(self.base, ignore_errors=True)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PYTHON, "-m", "tinykube.cli.main", "--socket",
                               str(self.socket), *args], capture_output=True, text=True,
                              timeout=timeout, check=False, cwd=TARGET)


def _cpu_seconds(pid: int) -> float:
    from .host import cpu_seconds  # host names its leaks by this module's names

    return cpu_seconds(pid)


def _child(pid: int) -> int:
    """The first child of `pid` (0: none yet)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0
    return int(children[0]) if children else 0


def reset_everything() -> str:
    """`tinykube reset --purge` for the benchmark's names, whatever root a crashed run used."""
    scratch = Path(tempfile.mkdtemp(prefix="tkbench-reset-"))
    try:
        result = subprocess.run([PYTHON, "-m", "tinykube.cli.main", "reset", "--purge",
                                 "--root", str(scratch / "root"), "--run-dir",
                                 str(scratch / "run"), "--bridge", BRIDGE, "--pod-cidr", CIDR,
                                 "--cgroup-subtree", SUBTREE], capture_output=True, text=True,
                                check=False, cwd=TARGET)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result.stdout + result.stderr
