"""A real tinykube daemon for tests: temp root, own run dir, socket, bridge, CIDRs, cgroups.

The one implementation behind the pytest plugin's `tinykube` fixture (tinykube.testing.plugin)
and tinykube's own integration tests (tests/integration/daemon.py re-exports it).

Tests drive it through the real CLI (`cli(...)`, a subprocess, as a user would) and through
the client for assertions. `stop()` leaves pods running (as the daemon does); `cleanup()`
deletes every object, stops the daemon, runs `tinykube reset --purge` and then checks that
nothing of this daemon is left on the host.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinykube.client import Client, DaemonUnreachable, StreamIdle
from tinykube.model.errors import NotFound
from tinykube.model.kinds import KINDS

# Owners before what they own, so a controller does not replace what cleanup deletes.
CONTROLLER_KINDS = tuple(k.kind for k in reversed(KINDS) if k.workload)


# How much slower than a real machine this one is (scripts/vm-test's emulated guest: ~10x).
SLOWDOWN = float(os.environ.get("TINYKUBE_TEST_SLOWDOWN", "1"))


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1,
             what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy (tests only: the product watches).
    `TINYKUBE_TEST_SLOWDOWN` (a factor; the VM lane under software emulation sets it)
    stretches every timeout."""
    timeout *= SLOWDOWN
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Daemon:
    def __init__(self, base: Path, tag: str | None = None) -> None:
        # `tag` names the host resources (bridge tkd<tag>, cgroup subtree tinykube-test-<tag>):
        # at most 11 characters (a link name has 15). Default: this process's pid and a random
        # suffix, so daemons of concurrent test runs never share a name.
        tag = tag or f"{os.getpid() % 1000:03d}{random.randrange(100):02d}"
        self.root = base / "root"
        self.run_dir = base / "run"
        self.socket = self.run_dir / "tinykube.sock"
        self.bridge = f"tkd{tag}"
        self.cgroup_subtree = f"tinykube-test-{tag}"
        self.cidr = f"10.{random.randrange(100, 200)}.{random.randrange(256)}.0/24"
        # Each daemon's ClusterIPs apart: every proxy table sees every packet on the host.
        self.service_cidr = f"10.{random.randrange(200, 250)}.{random.randrange(256)}.0/24"
        self.log_path = base / "daemon.log"
        # The TLS listener on a free loopback port: test daemons run side by side.
        self.listen = f"127.0.0.1:{free_port()}"
        self.process: subprocess.Popen | None = None
        self.client = Client(self.socket)
        self.extra_args: list[str] = []  # more `tinykube daemon` flags for the next start
        self.mounts_before = mount_snapshot()

    # ---- lifecycle --------------------------------------------------------------------------

    def args(self) -> list[str]:
        return ["--socket", str(self.socket), "daemon", "--root", str(self.root),
                "--run-dir", str(self.run_dir), "--bridge", self.bridge,
                "--pod-cidr", self.cidr, "--cgroup-subtree", self.cgroup_subtree,
                "--listen", self.listen, "--service-cidr", self.service_cidr,
                # Tests never send DNS queries off the machine.
                "--dns-upstream", "none", *self.extra_args]

    def start(self) -> Daemon:
        with open(self.log_path, "ab") as log:  # the daemon keeps its own copy of the fd
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tinykube.cli.main", *self.args()],
                stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._up, timeout=30, what=f"daemon on {self.socket} (log {self.log_path})")
        return self

    def _up(self) -> bool:
        if self.process and self.process.poll() is not None:
            raise AssertionError(f"daemon exited with {self.process.returncode}:\n"
                                 + self.log_path.read_text()[-3000:])
        return self.socket.exists() and self.client.healthy()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.process, sig)

    def cleanup(self) -> None:
        uids: set[str] = set()
        if self.process and self.process.poll() is None:
            try:
                uids = {p["metadata"]["uid"] for p in self.client.list("Pod", "*")}
                for kind in CONTROLLER_KINDS:
                    for obj in self.client.list(kind, "*"):
                        self._delete(kind, obj)
                for pod in self.client.list("Pod", "*"):
                    self._delete("Pod", pod, grace_period=1)
                wait_for(lambda: not self.client.list("Pod", "*"), timeout=60,
                         what="all pods gone")
            except DaemonUnreachable:
                # Its start failed (no socket yet on a loaded machine): nothing to delete
                # through the API, and raising here would skip the reset below (leaking its
                # bridge, cgroups and nft table) and hide why the start failed.
                pass
            finally:
                self.stop()
        self.client.close()
        reset = self.cli("reset", "--purge", "--root", str(self.root), "--run-dir",
                         str(self.run_dir), "--bridge", self.bridge, "--pod-cidr", self.cidr,
                         "--cgroup-subtree", self.cgroup_subtree, check=False)
        assert reset.returncode == 0, reset.stderr + reset.stdout
        assert_no_leaks(self.bridge, uids, self.root, self.mounts_before)

    def _delete(self, kind: str, obj: dict, **options: Any) -> None:
        try:  # the garbage collector may get there first
            self.client.delete(kind, obj["metadata"]["name"], obj["metadata"]["namespace"],
                               **options)
        except NotFound:
            pass

    # ---- driving ----------------------------------------------------------------------------

    def cli(self, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "tinykube.cli.main", "--socket",
                                 str(self.socket), *args], input=input, capture_output=True,
                                text=True, timeout=timeout * SLOWDOWN)
        if check and result.returncode != 0:
            raise AssertionError(f"tinykube {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def apply(self, manifest: str) -> str:
        return self.cli("apply", "-f", "-", input=manifest).stdout

    def get_json(self, *args: str) -> Any:
        return json.loads(self.cli("get", *args, "-o", "json").stdout)

    def pod(self, name: str, namespace: str = "default") -> dict:
        return self.client.get("Pod", name, namespace)

    def wait_pod(self, name: str, predicate: Callable[[dict], bool], timeout: float = 30,
                 what: str = "") -> dict:
        def check() -> dict | None:
            try:
                pod = self.pod(name)
            except Exception:  # noqa: BLE001 - not there (yet) or daemon busy: poll again
                return None
            try:
                return pod if predicate(pod) else None
            except (KeyError, IndexError):
                return None  # a field the predicate reads is not reported yet: not yet
        return wait_for(check, timeout=timeout, what=what or f"pod {name}")

    def wait_running(self, name: str, timeout: float = 30) -> dict:
        return self.wait_pod(name, lambda p: p.get("status", {}).get("phase") == "Running",
                             timeout, f"pod {name} Running")

    def wait_ready(self, name: str, timeout: float = 30) -> dict:
        return self.wait_pod(name, is_ready, timeout, f"pod {name} Ready")

    def exec(self, pod: str, *command: str, container: str | None = None
             ) -> subprocess.CompletedProcess:
        args = ["exec", pod] + (["-c", container] if container else []) + ["--", *command]
        return self.cli(*args, check=False)


def stop_process(process: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    """Send `sig` to a still-running process and reap it; SIGKILL after 20 s so a hung
    daemon cannot hang the test session."""
    if process and process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20 * SLOWDOWN)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions", []))


def container_pid(pod: dict, name: str | None = None) -> int:
    for cs in pod["status"]["containerStatuses"]:
        if name is None or cs["name"] == name:
            return int(cs["containerID"].split("://")[1])
    raise KeyError(name)


def mount_snapshot() -> set[str]:
    """This process's mounts as mount IDs (a mount made later gets a new ID, even on a path
    that was a mount point already). Leak checks compare against a snapshot taken before the
    test, never an absolute list: inside a container /etc/hosts, /etc/hostname and
    /etc/resolv.conf are bind mounts the container runtime made."""
    return {line.split()[0] for line in Path("/proc/self/mountinfo").read_text().splitlines()}


def new_mount_points(before: set[str]) -> list[str]:
    """Mount points of mounts made since the snapshot ``before``, in this mount namespace."""
    return [fields[4] for fields in (line.split() for line in
                                     Path("/proc/self/mountinfo").read_text().splitlines())
            if fields[0] not in before]


# Where a pod's mounts would land if one escaped a container's private mount namespace.
POD_FILE_TARGETS = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf")


def pod_cgroups(uids: set[str], top: str = "/sys/fs/cgroup") -> list[str]:
    """Every cgroup of these pods, in any hierarchy. os.walk, not Path.glob: cgroups of
    other pods (of this daemon or another) vanish mid-walk, which glob raises on."""
    names = {f"pod-{uid}" for uid in uids}
    found = []
    for dirpath, dirnames, _ in os.walk(top):
        found += [os.path.join(dirpath, d) for d in dirnames if d in names]
    return found


def assert_no_leaks(bridge: str, uids: set[str], root: Path,
                    mounts_before: set[str] | None = None) -> None:
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    leftover = [line for line in links.splitlines()
                if f": {bridge}" in line or any(f"tkv{u[:8]}" in line for u in uids)]
    assert not leftover, f"links left behind: {leftover}"
    table = subprocess.run(["nft", "list", "table", "ip", f"tinykube_{bridge}"],
                           capture_output=True, text=True, check=False)
    assert table.returncode != 0, f"nftables table tinykube_{bridge} left behind"
    cgroups = pod_cgroups(uids)
    assert not cgroups, f"cgroups left behind: {cgroups}"
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(root) not in mounts, "mounts under the test root left behind"
    if mounts_before is not None:
        # Only mounts that could be this daemon's: others' (concurrent runs) are not ours.
        leaked = [p for p in new_mount_points(mounts_before)
                  if p in POD_FILE_TARGETS or p.startswith(str(root) + "/")]
        assert not leaked, f"mounts made during the test left behind: {leaked}"


class PodWatch:
    """Watches pods in a background thread and hands every event to `record(type, pod)`
    (under `self.lock`); resumes from the last resourceVersion when the stream idles.
    A failure in the thread is kept in `error` for the test thread to report."""

    def __init__(self, daemon: Daemon, label_selector: str | None = None) -> None:
        self.client = Client(daemon.socket)
        self.label_selector = label_selector
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def record(self, type_: str, pod: dict) -> None:
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.client.close()

    def _run(self) -> None:
        rv = None
        try:
            while not self._stop.is_set():
                try:
                    for type_, pod in self.client.watch(
                            "Pod", "default", label_selector=self.label_selector,
                            resource_version=rv, idle_timeout=0.5):
                        rv = pod["metadata"]["resourceVersion"]
                        with self.lock:
                            self.record(type_, pod)
                        if self._stop.is_set():
                            return
                except StreamIdle:
                    continue
        except Exception as e:  # noqa: BLE001 - reported by the test thread
            self.error = e
