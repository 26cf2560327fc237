"""The v1 backend against the real kernel: limits are enforced and counted.

(The v2 backend cannot be exercised for real on this machine, whose cgroup2 hierarchy has no
controllers; tests/unit/test_cgroup_units.py covers it on a fake tree.)
"""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tinykube.runtime.cgroups import CgroupV1, Limits, detect
from tinykube.runtime.sandbox import shim_spawn

pytestmark = pytest.mark.root


@pytest.fixture
def pod(cgroups):
    """A fresh pod uid; at the end every process in its cgroups is gone and they are removed."""
    uid = "tk" + uuid.uuid4().hex[:12]
    yield uid
    cgroups.kill_all(uid)
    cgroups.remove(uid)
    assert uid not in cgroups.pod_uids()
    assert not any(os.path.exists(d) for d in cgroups.dirs(uid))


def run_in(cgroups, uid, name, argv, **kwargs):
    """Start argv already inside the container cgroup (tk-shim joins it before exec)."""
    fds = cgroups.join_fds(uid, name)
    setup = [arg for fd in fds for arg in ("-c", str(fd))]
    try:
        return shim_spawn(setup, ["-E", "--", *argv], f"test process in {uid}/{name}", fds,
                          **kwargs)
    finally:
        for fd in fds:
            os.close(fd)


def test_detects_v1_here(cgroups):
    assert isinstance(cgroups, CgroupV1)
    with open("/proc/self/cgroup") as f:
        own_memory = next(line for line in f if ":memory:" in line).split(":", 2)[2].strip()
    assert cgroups.controller_roots["memory"] == os.path.normpath(
        "/sys/fs/cgroup/memory" + own_memory)


def test_process_joins_every_hierarchy(cgroups, pod):
    cgroups.create_container(pod, "app", Limits())
    p = run_in(cgroups, pod, "app", ["sleep", "30"])
    try:
        with open(f"/proc/{p.pid}/cgroup") as f:
            lines = f.read()
        for controller in ("memory", "cpu", "cpuacct", "pids"):
            line = next(x for x in lines.splitlines() if f":{controller}:" in x)
            assert line.endswith(f"/{cgroups.subtree}/pod-{pod}/app")
        assert cgroups.pids(pod, "app") == [p.pid]
        assert cgroups.pids(pod) == [p.pid]
    finally:
        cgroups.kill_all(pod, "app")
        p.wait()
    assert cgroups.pids(pod) == []


def test_memory_limit_oom_kills_and_is_counted(cgroups, pod):
    cgroups.create_container(pod, "app", Limits(memory_bytes=20 << 20))
    assert cgroups.oom_kills(pod, "app") == 0
    p = run_in(cgroups, pod, "app",
               [sys.executable, "-c", "b = bytearray(100 * 1024 * 1024); print(len(b))"],
               stdout=subprocess.PIPE)
    out, _ = p.communicate(timeout=30)
    assert p.returncode == -signal.SIGKILL, out
    assert cgroups.oom_kills(pod, "app") == 1


def test_cpu_quota_holds_a_busy_loop_near_the_limit(cgroups, pod):
    cgroups.create_container(pod, "app", Limits(cpu_millis=200))
    p = run_in(cgroups, pod, "app", ["sh", "-c", "while :; do :; done"])
    try:
        time.sleep(0.3)  # let the first period pass
        used0, t0 = cgroups.cpu_usage_ns(pod, "app"), time.monotonic()
        time.sleep(2.0)
        rate = (cgroups.cpu_usage_ns(pod, "app") - used0) / 1e9 / (time.monotonic() - t0)
    finally:
        cgroups.kill_all(pod, "app")
        p.wait()
    print(f"\nCPU 200m busy loop: {rate:.3f} CPU-s per s")
    assert 0.12 < rate < 0.30


def test_pids_limit_stops_forks(cgroups, pod):
    cgroups.create_container(pod, "app", Limits(pids=4))
    loop = "for i in 1 2 3 4 5 6 7 8; do sleep 30 >/dev/null 2>&1 & done"
    p = run_in(cgroups, pod, "app", ["sh", "-c", loop], stderr=subprocess.PIPE)
    try:
        _, err = p.communicate(timeout=10)
        assert p.returncode != 0 and b"fork" in err.lower(), err
        assert len(cgroups.pids(pod, "app")) == 3  # sh itself counted while it forked them
    finally:
        cgroups.kill_all(pod, "app")


def test_memory_usage_is_reported(cgroups, pod):
    cgroups.create_container(pod, "app", Limits())
    code = "b = bytearray(30 << 20); print('ok', flush=True); import time; time.sleep(30)"
    p = run_in(cgroups, pod, "app", [sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"ok\n"
        assert cgroups.memory_bytes(pod, "app") > 30 << 20
    finally:
        cgroups.kill_all(pod, "app")
        p.wait()
        p.stdout.close()


def test_kill_all_catches_forks_and_remove_waits_for_exit(cgroups, pod):
    cgroups.create_container(pod, "app", Limits())
    # A parent that keeps forking: SIGKILL rounds repeat until the cgroup is empty.
    p = run_in(cgroups, pod, "app", ["sh", "-c", "while :; do sleep 30 >/dev/null 2>&1 & done"],
               stderr=subprocess.DEVNULL)
    time.sleep(0.2)
    assert len(cgroups.pids(pod, "app")) > 1
    cgroups.kill_all(pod)
    p.wait()
    # The sleeps were children of sh (reparented, reaped by init): nothing is left.
    assert cgroups.pids(pod) == []
    cgroups.remove(pod)
    cgroups.remove(pod)
    assert pod not in cgroups.pod_uids()


def test_sigterm_kill_all_signals_once(cgroups, pod):
    cgroups.create_container(pod, "app", Limits())
    p = run_in(cgroups, pod, "app", ["sleep", "30"])
    cgroups.kill_all(pod, "app", signal.SIGTERM)
    assert p.wait(timeout=5) == -signal.SIGTERM


def test_remove_all_under_a_configured_parent():
    parent = "/tk-test-" + uuid.uuid4().hex[:8]
    driver = detect(parent)
    try:
        assert driver.controller_roots["pids"] == f"/sys/fs/cgroup/pids{parent}"
        driver.create_container("tka", "app", Limits(pids=10))
        driver.create_pod("tkb")
        p = run_in(driver, "tka", "app", ["sleep", "30"])
        assert driver.pod_uids() == {"tka", "tkb"}
        driver.remove_all()
        p.wait()
        assert driver.pod_uids() == set()
        assert not any(os.path.exists(d) for d in driver.subtree_dirs())
    finally:
        driver.remove_all()
        for root in driver.roots.values():
            if os.path.isdir(root):
                os.rmdir(root)
