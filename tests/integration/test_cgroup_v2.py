"""cgroup v2 against the real kernel: tk-shim's clone3(CLONE_INTO_CGROUP), and (where the
unified hierarchy has controllers: the VM lane, scripts/vm-test) the v2 backend's limits,
counters and delegation. The limits' behaviour (OOM, CPU quota, pids) is tested for both
versions in test_cgroups.py."""

import os
import subprocess

import pytest

from tinykube.runtime.cgroups import parse_mountinfo
from tinykube.runtime.sandbox import shim_spawn

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
