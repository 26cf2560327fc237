"""The cgroup backend against the real kernel: limits are enforced and counted.

On this machine (hybrid) that is the v1 backend; in the VM lane (scripts/vm-test, pure
cgroup v2) the same tests run against the v2 backend. `TINYKUBE_EXPECT_CGROUP` (the VM sets
2) makes sure the lane really ran the version it is meant to.
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tinykube.runtime.cgroups import CgroupV1, CgroupV2, Limits, detect, parse_mountinfo
from tinykube.runtime.cgroups.base import read_procs
from tinykube.runtime.sandbox import shim_spawn
from tinykube.testing.daemon import wait_for

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
    setup, fds = cgroups.join_args(uid, name)
    try:
        return shim_spawn(setup, ["-E", "--", *argv], f"test process in {uid}/{name}", fds,
                          **kwargs)
    finally:
        for fd in fds:
            os.close(fd)


def expected_version():
    """1 on a host with v1 hierarchies (hybrid), 2 where only cgroup2 is mounted."""
    if os.environ.get("TINYKUBE_EXPECT_CGROUP"):
        return int(os.environ["TINYKUBE_EXPECT_CGROUP"])
    with open("/proc/self/mountinfo") as f:
        return 1 if any(m.fstype == "cgroup" for m in parse_mountinfo(f.read())) else 2


def test_detects_the_hierarchy_here(cgroups):
    # The ground truth, not path arithmetic: this process is in the cgroup the driver found
    # (on a host, and in a container whose cgroup mounts show only the container's cgroup).
    assert cgroups.version == expected_version()
    if isinstance(cgroups, CgroupV1):
        for controller, root in cgroups.controller_roots.items():
            assert os.getpid() in read_procs(root), (controller, root)
    else:
        assert isinstance(cgroups, CgroupV2)
        assert os.getpid() in read_procs(cgroups.parent_dir)
        # Every controller the limits need reached it.
        assert {"cpu", "memory", "pids"} <= set(cgroups.controllers)


# Run inside the namespaces of the cases below: detect this process's cgroups and say whether
# each directory found really holds it.
DETECT_IN_NAMESPACE = """
import json, os, subprocess, sys
from tinykube.runtime.cgroups import detect
from tinykube.runtime.cgroups.base import read_procs
for spec in json.loads(sys.argv[1]):
    subprocess.run(spec, check=True)
roots = detect(subtree="unused").roots
print(json.dumps({c: [r, os.getpid() in read_procs(r)] for c, r in roots.items()}))
"""


def cgroup_mountpoints():
    """v1: mountpoint -> its controllers; v2: {"/sys/fs/cgroup": []}."""
    with open("/proc/self/mountinfo") as f:
        mounts = parse_mountinfo(f.read())
    wanted = {"memory", "cpu", "cpuacct", "pids"}
    return {m.mountpoint: sorted(m.controllers & wanted) for m in mounts
            if (m.fstype == "cgroup" and m.controllers & wanted
                and m.mountpoint.startswith("/sys/fs/cgroup/"))
            or (m.fstype == "cgroup2" and m.mountpoint == "/sys/fs/cgroup")}


def primary_root(found):
    """The directory detection found for the memory controller (v1) or the hierarchy (v2)."""
    return found["memory" if "memory" in found else "unified"][0]


def detect_in_namespace(cgroups, uid, unshare, mounts):
    """Put a fresh process into pod ``uid``'s cgroups, enter new namespaces, make ``mounts``
    there (never on the host: a private mount namespace) and run detection."""
    procs = " ".join(os.path.join(d, "cgroup.procs") for d in cgroups.member_dirs(uid, None))
    script = f'for f in {procs}; do echo $$ > "$f"; done; exec "$@"'
    result = subprocess.run(["sh", "-c", script, "sh", "unshare", "--mount", *unshare,
                             "--fork", sys.executable, "-c", DETECT_IN_NAMESPACE,
                             json.dumps(mounts)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_detects_own_cgroup_inside_a_private_cgroup_namespace(cgroups, pod):
    # As in `podman run --cgroupns=private`: a cgroup namespace rooted at the pod cgroup and
    # the hierarchies mounted afresh inside it (their root and our cgroup are both "/").
    cgroups.create_pod(pod)
    # (as a container runtime does: a tmpfs at /sys/fs/cgroup, the hierarchies inside it)
    points = cgroup_mountpoints()
    if cgroups.version == 2:
        # (cgroup2 cannot be mounted again right on top of itself: a tmpfs in between)
        mounts = [["mount", "-t", "tmpfs", "tk-cgroups", "/sys/fs/cgroup"],
                  ["mount", "-t", "cgroup2", "tk-cgroup2", "/sys/fs/cgroup"]]
    else:
        mounts = [["mount", "-t", "tmpfs", "tk-cgroups", "/sys/fs/cgroup"], ["mkdir", *points]]
        mounts += [["mount", "-t", "cgroup", "-o", ",".join(controllers), "cgroup", point]
                   for point, controllers in points.items()]
    found = detect_in_namespace(cgroups, pod, ["--cgroup"], mounts)
    assert all(holds for _, holds in found.values()), found
    assert primary_root(found) == ("/sys/fs/cgroup" if cgroups.version == 2
                                   else "/sys/fs/cgroup/memory")


def test_detects_own_cgroup_through_a_mount_showing_a_subtree(cgroups, pod):
    # As in a privileged container without a cgroup namespace: each hierarchy mounted with a
    # root of the container's cgroup (here the pod cgroup), /proc/self/cgroup the full path.
    cgroups.create_pod(pod)
    points = cgroup_mountpoints()
    mounts = [["mount", "--bind", d, next(p for p in points if d.startswith(p + "/"))]
              for d in cgroups.member_dirs(pod, None)]
    found = detect_in_namespace(cgroups, pod, [], mounts)
    assert all(holds for _, holds in found.values()), found
    assert primary_root(found) == ("/sys/fs/cgroup" if cgroups.version == 2
                                   else "/sys/fs/cgroup/memory")


def test_process_joins_every_hierarchy(cgroups, pod):
    cgroups.create_container(pod, "app", Limits())
    p = run_in(cgroups, pod, "app", ["sleep", "30"])
    try:
        with open(f"/proc/{p.pid}/cgroup") as f:
            lines = f.read()
        hierarchies = (("memory", "cpu", "cpuacct", "pids") if cgroups.version == 1
                       else ("",))  # v2: the one "0::<path>" line
        for controller in hierarchies:
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
    wait_for(lambda: len(cgroups.pids(pod, "app")) > 1, what="sh forking")
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
        if driver.version == 1:
            assert driver.controller_roots["pids"] == f"/sys/fs/cgroup/pids{parent}"
        else:
            assert driver.roots == {"unified": f"/sys/fs/cgroup{parent}"}
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
