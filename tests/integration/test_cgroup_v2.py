"""cgroup v2 against the real kernel: tk-shim's clone3(CLONE_INTO_CGROUP), and (where the
unified hierarchy has controllers: the VM lane, scripts/vm-test) the v2 backend's limits,
counters and delegation. The limits' behaviour (OOM, CPU quota, pids) is tested for both
versions in test_cgroups.py."""

import os
import subprocess
import sys

import pytest

from tests.integration.daemon import Daemon
from tinykube.runtime.cgroups import parse_mountinfo
from tinykube.runtime.sandbox import shim_spawn
from tinykube.testing.daemon import wait_for
from tinykube.testing.lifecycle import running

pytestmark = pytest.mark.root


def unified_mountpoint() -> str:
    with open("/proc/self/mountinfo") as f:
        mounts = [m for m in parse_mountinfo(f.read()) if m.fstype == "cgroup2"]
    if not mounts:
        pytest.skip("no cgroup2 hierarchy mounted")
    return mounts[0].mountpoint


@pytest.fixture
def v2_cgroup():
    """A fresh, empty cgroup in the unified hierarchy (on a hybrid host: the controller-less
    one at /sys/fs/cgroup/unified, enough for membership)."""
    path = os.path.join(unified_mountpoint(), f"tk-clone3-{os.getpid()}")
    os.mkdir(path)
    yield path
    with open(os.path.join(path, "cgroup.procs")) as f:
        for pid in f.read().split():
            os.kill(int(pid), 9)
    for _ in range(200):
        try:
            os.rmdir(path)
            break
        except OSError:
            subprocess.run(["sleep", "0.01"], check=True)
    assert not os.path.exists(path)


def test_shim_creates_the_app_inside_its_cgroup_and_stays_outside(v2_cgroup, tmp_path):
    # The app reports its own cgroup and its parent's (the shim, which monitors it).
    out = tmp_path / "out"
    fd = os.open(v2_cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        proc = shim_spawn(["-K", str(fd)],
                          [str(tmp_path / "exit"), "--", "sh", "-c",
                           f"cat /proc/self/cgroup /proc/$PPID/cgroup > {out}"],
                          "app in a v2 cgroup", [fd])
    finally:
        os.close(fd)
    assert proc.wait() == 0
    app, shim = [line for line in out.read_text().splitlines() if line.startswith("0::")]
    name = os.path.basename(v2_cgroup)
    assert app.endswith("/" + name), app
    assert not shim.endswith("/" + name), shim
    assert (tmp_path / "exit").read_text().strip() == "0"


def test_shim_in_exec_mode_joins_the_cgroup_itself(v2_cgroup, tmp_path):
    out = tmp_path / "out"
    fd = os.open(v2_cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        proc = shim_spawn(["-K", str(fd)], ["-E", "--", "sh", "-c", f"cat /proc/self/cgroup > {out}"],
                          "exec in a v2 cgroup", [fd])
    finally:
        os.close(fd)
    assert proc.wait() == 0
    line = next(x for x in out.read_text().splitlines() if x.startswith("0::"))
    assert line.endswith("/" + os.path.basename(v2_cgroup)), line


# -- delegation (needs a unified hierarchy with controllers: the VM lane) ------------------------
def v2_root_with_controllers() -> str:
    root = "/sys/fs/cgroup"
    try:
        with open(os.path.join(root, "cgroup.controllers")) as f:
            present = set(f.read().split())
    except FileNotFoundError:
        present = set()
    if not {"cpu", "memory", "pids"} <= present:
        pytest.skip("no cgroup v2 hierarchy with controllers at /sys/fs/cgroup (run scripts/vm-test)")
    return root


class DaemonInCgroup(Daemon):
    """A daemon started inside ``cgroup_dir`` and alone there, as systemd starts a service
    with ``Delegate=yes`` in the unit's own cgroup."""

    def __init__(self, base, cgroup_dir: str) -> None:
        super().__init__(base)
        self.cgroup_dir = cgroup_dir

    def start(self) -> "DaemonInCgroup":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.cgroup_dir,
                 sys.executable, "-m", "tinykube.cli.main", *self.args()],
                stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._up, timeout=60, what=f"daemon on {self.socket} (log {self.log_path})")
        return self


@pytest.fixture
def service_cgroup():
    """A cgroup standing in for a systemd service's (``/tk-svc-<pid>.service``); removed after,
    with whatever the daemon made in it."""
    root = v2_root_with_controllers()
    path = os.path.join(root, f"tk-svc-{os.getpid()}.service")
    os.mkdir(path)
    yield path
    for dirpath, _, _ in sorted(os.walk(path), key=lambda entry: -entry[0].count("/")):
        with open(os.path.join(dirpath, "cgroup.procs")) as f:
            assert not f.read().split(), f"processes left in {dirpath}"
        os.rmdir(dirpath)


LIMITED_POD = """
apiVersion: v1
kind: Pod
metadata: {name: limited}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      command: [sleep, infinity]
      resources:
        requests: {cpu: 250m}
        limits: {cpu: 500m, memory: 64Mi, tinykube.io/pids: "20"}
"""


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def check_limited_pod(d: Daemon, parent: str) -> None:
    d.apply(LIMITED_POD)
    pod = d.wait_running("limited", timeout=60)
    app = os.path.join(parent, d.cgroup_subtree, f"pod-{pod['metadata']['uid']}", "app")
    assert read(f"{app}/cpu.max") == "50000 100000"
    assert read(f"{app}/memory.max") == str(64 << 20)
    assert read(f"{app}/pids.max") == "20"
    assert read(f"{app}/cpu.weight") == "10"  # 250m: 256 shares -> weight 10
    assert read(f"{app}/cgroup.procs")  # the app runs in it
    d.cli("delete", "pod", "limited", "--grace-period", "1")
    wait_for(lambda: not d.get_json("pods")["items"], timeout=60, what="pod gone")


def test_daemon_alone_in_its_cgroup_moves_into_a_leaf_and_delegates(service_cgroup, tmp_path):
    with running(DaemonInCgroup(tmp_path, service_cgroup)) as d:
        leaf = os.path.join(service_cgroup, f"{d.cgroup_subtree}.daemon")
        check_limited_pod(d, service_cgroup)
        assert d.process.pid in [int(p) for p in read(f"{leaf}/cgroup.procs").split()]
        assert {"cpu", "memory", "pids"} <= set(
            read(f"{service_cgroup}/cgroup.subtree_control").split())


def test_cgroup_parent_inside_a_delegated_service_cgroup(service_cgroup, tmp_path):
    relative = "/" + os.path.relpath(service_cgroup, "/sys/fs/cgroup") + "/pods"
    daemon = DaemonInCgroup(tmp_path, service_cgroup)
    daemon.extra_args = ["--cgroup-parent", relative]
    with running(daemon) as d:
        check_limited_pod(d, service_cgroup + "/pods")


@pytest.fixture
def shared_cgroup():
    """A cgroup that another process (a login shell, say) sits in; that process must be left
    where it is."""
    root = v2_root_with_controllers()
    shared = os.path.join(root, f"tk-shared-{os.getpid()}.scope")
    os.mkdir(shared)
    other = subprocess.Popen(["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec sleep 300', shared])
    try:
        wait_for(lambda: str(other.pid) in read(f"{shared}/cgroup.procs").split(), timeout=10,
                 what="the other process in its cgroup")
        yield shared
        assert str(other.pid) in read(f"{shared}/cgroup.procs").split()  # left where it was
    finally:
        other.kill()
        other.wait()
        for dirpath, _, _ in sorted(os.walk(shared), key=lambda entry: -entry[0].count("/")):
            os.rmdir(dirpath)


def test_daemon_sharing_its_cgroup_puts_pods_under_the_root(shared_cgroup, tmp_path):
    with running(DaemonInCgroup(tmp_path, shared_cgroup)) as d:
        check_limited_pod(d, "/sys/fs/cgroup")
        assert not os.path.exists(os.path.join(shared_cgroup, d.cgroup_subtree))


def test_configured_parent_shared_with_other_processes_is_refused_with_the_reason(
        shared_cgroup, tmp_path):
    daemon = DaemonInCgroup(tmp_path, shared_cgroup)
    daemon.extra_args = ["--cgroup-parent", "/" + os.path.basename(shared_cgroup)]
    with running(daemon) as d:
        d.apply(LIMITED_POD)
        events = wait_for(lambda: [e for e in d.client.events(d.pod("limited"))
                                   if e.get("reason") == "FailedCreatePodSandBox"],
                          timeout=60, what="a FailedCreatePodSandBox event")
        message = events[0]["message"]
        assert shared_cgroup in message and "Delegate=yes" in message, message
        d.cli("delete", "pod", "limited", "--grace-period", "1")
