"""Path, parse and file-format logic of both cgroup backends, on a fake directory tree."""

import os
import signal

import pytest

from tinykube.runtime.cgroups import (
    CgroupError,
    CgroupV1,
    CgroupV2,
    Limits,
    detect,
    parse_mountinfo,
    parse_proc_cgroup,
)
from tinykube.runtime.cgroups.base import cpu_shares, cpu_weight
from tinykube.runtime.cgroups.v1 import cfs_quota_us
from tinykube.runtime.cgroups.v2 import cpu_max

HYBRID_MOUNTINFO = """\
31 23 0:28 / {root} rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / {root}/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / {root}/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / {root}/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / {root}/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / {root}/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_PROC_CGROUP = """\
8:pids:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/
"""
V2_MOUNTINFO = "30 23 0:27 / {root} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
V2_PROC_CGROUP = "0::/user.slice/tk.scope\n"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def read(path):
    with open(path) as f:
        return f.read()


def files_of(tmp_path):
    return {"mountinfo": str(tmp_path / "mountinfo"), "proc_cgroup": str(tmp_path / "cgroup")}


@pytest.fixture
def hybrid(tmp_path):
    root = str(tmp_path / "cg")
    write(str(tmp_path / "mountinfo"), HYBRID_MOUNTINFO.format(root=root))
    write(str(tmp_path / "cgroup"), HYBRID_PROC_CGROUP)
    for c in ("cpu", "cpuacct", "memory", "pids"):
        os.makedirs(f"{root}/{c}", exist_ok=True)
    return root, files_of(tmp_path)


@pytest.fixture
def unified(tmp_path):
    root = str(tmp_path / "cg2")
    parent = f"{root}/user.slice/tk.scope"
    write(f"{parent}/cgroup.controllers", "cpuset cpu io memory pids\n")
    write(f"{parent}/cgroup.subtree_control", "")
    write(str(tmp_path / "mountinfo"), V2_MOUNTINFO.format(root=root))
    write(str(tmp_path / "cgroup"), V2_PROC_CGROUP)
    return parent, files_of(tmp_path)


# -- parsing and detection ------------------------------------------------------------------
def test_parse_proc_cgroup_splits_comounted_controllers():
    parsed = parse_proc_cgroup("3:cpu,cpuacct:/a\n0::/b\n1:name=systemd:/\n")
    assert parsed == {"cpu": "/a", "cpuacct": "/a", "": "/b", "name=systemd": "/"}


def test_parse_mountinfo_reads_cgroup_mounts_only():
    mounts = parse_mountinfo(HYBRID_MOUNTINFO.format(root="/sys/fs/cgroup"))
    assert [m.mountpoint for m in mounts][-1] == "/sys/fs/cgroup/unified"
    assert {m.fstype for m in mounts} == {"cgroup", "cgroup2"}
    assert "memory" in next(m for m in mounts if m.mountpoint.endswith("/memory")).controllers


def test_detect_hybrid_nests_under_own_cgroup_per_controller(hybrid):
    root, files = hybrid
    driver = detect(**files)
    assert isinstance(driver, CgroupV1)
    assert driver.controller_roots == {
        "memory": f"{root}/memory/process_api/abc", "cpu": f"{root}/cpu",
        "cpuacct": f"{root}/cpuacct", "pids": f"{root}/pids"}


def test_detect_configured_parent_applies_to_every_hierarchy(hybrid):
    root, files = hybrid
    driver = detect("/tk-parent", **files)
    assert driver.controller_roots["memory"] == f"{root}/memory/tk-parent"
    assert driver.controller_roots["pids"] == f"{root}/pids/tk-parent"


def test_detect_strips_mount_root(tmp_path):
    write(str(tmp_path / "mi"), "35 31 0:32 /outer /c/memory rw - cgroup cgroup rw,memory\n"
          "32 31 0:29 / /c/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
          "39 31 0:36 / /c/pids rw - cgroup cgroup rw,pids\n")
    write(str(tmp_path / "pc"), "4:memory:/outer/inner\n1:cpu,cpuacct:/x\n8:pids:/\n")
    driver = detect(mountinfo=str(tmp_path / "mi"), proc_cgroup=str(tmp_path / "pc"))
    assert driver.controller_roots["memory"] == "/c/memory/inner"
    # co-mounted cpu,cpuacct is one hierarchy: used once for joining
    assert driver.controller_roots["cpu"] == driver.controller_roots["cpuacct"] == "/c/cpu,cpuacct/x"
    assert len(driver.roots) == 3


# A privileged container without a cgroup namespace (podman/docker on a v1 host): each
# hierarchy is mounted showing only the container's own cgroup, and /proc/self/cgroup names
# the host's full path.
CONTAINER_MOUNTINFO = """\
35 31 0:32 /libpod_parent/libpod-1f {root}/memory rw - cgroup cgroup rw,memory
32 31 0:29 /libpod_parent/libpod-1f {root}/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
39 31 0:36 /libpod_parent/libpod-1f {root}/pids rw - cgroup cgroup rw,pids\n"""
CONTAINER_PROC_CGROUP = "4:memory:{own}\n1:cpu,cpuacct:{own}\n8:pids:{own}\n"


def detect_with(tmp_path, mountinfo, proc_cgroup, parent=None):
    write(str(tmp_path / "mi"), mountinfo)
    write(str(tmp_path / "pc"), proc_cgroup)
    return detect(parent, mountinfo=str(tmp_path / "mi"), proc_cgroup=str(tmp_path / "pc"))


def test_detect_in_a_container_resolves_own_cgroup_through_the_mount_root(tmp_path):
    driver = detect_with(tmp_path, CONTAINER_MOUNTINFO.format(root="/c"),
                         CONTAINER_PROC_CGROUP.format(own="/libpod_parent/libpod-1f/ci"))
    assert driver.controller_roots == {"memory": "/c/memory/ci", "cpu": "/c/cpu,cpuacct/ci",
                                       "cpuacct": "/c/cpu,cpuacct/ci", "pids": "/c/pids/ci"}


def test_detect_refuses_an_own_cgroup_the_mount_does_not_show(tmp_path):
    # Old code joined the full path under the mountpoint: a cgroup tree that does not contain
    # the daemon, silently created inside the container's subtree.
    with pytest.raises(CgroupError, match="memory cgroup /user.slice/s1 is not visible"):
        detect_with(tmp_path, CONTAINER_MOUNTINFO.format(root="/c"),
                    CONTAINER_PROC_CGROUP.format(own="/user.slice/s1"))


def test_detect_in_a_cgroup_namespace_uses_the_fresh_mount_not_the_inherited_one(tmp_path):
    # `unshare --cgroup` + a fresh cgroupfs mount over the inherited one (podman
    # --cgroupns=private): the inherited mount's root lies outside the namespace, shown as
    # "/..", and is hidden by the new mount on the same path.
    mountinfo = ("35 31 0:32 /.. /c/memory rw - cgroup cgroup rw,memory\n"
                 "39 31 0:36 /.. /c/pids rw - cgroup cgroup rw,pids\n"
                 "32 31 0:29 /.. /c/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
                 "90 35 0:32 / /c/memory rw - cgroup cgroup rw,memory\n"
                 "91 39 0:36 / /c/pids rw - cgroup cgroup rw,pids\n"
                 "92 32 0:29 / /c/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n")
    driver = detect_with(tmp_path, mountinfo, CONTAINER_PROC_CGROUP.format(own="/"))
    assert driver.controller_roots["memory"] == "/c/memory"
    # Without the fresh mount the only view is the host's root: refused, not "/c/memory".
    with pytest.raises(CgroupError, match="not visible"):
        detect_with(tmp_path, "".join(mountinfo.splitlines(True)[:3]),
                    CONTAINER_PROC_CGROUP.format(own="/"))


def test_detect_prefers_the_mount_that_shows_the_cgroup_over_a_later_bind(tmp_path):
    # A second, later mount of the memory hierarchy elsewhere (a bind of some sub-cgroup) must
    # not replace /sys/fs/cgroup/memory.
    mountinfo = ("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                 "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
                 "39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
                 "77 60 0:32 /other /run/elsewhere rw - cgroup cgroup rw,memory\n")
    driver = detect_with(tmp_path, mountinfo, CONTAINER_PROC_CGROUP.format(own="/a"))
    assert driver.controller_roots["memory"] == "/sys/fs/cgroup/memory/a"


def test_detect_configured_parent_in_a_container(tmp_path):
    mountinfo = CONTAINER_MOUNTINFO.format(root="/c")
    own = CONTAINER_PROC_CGROUP.format(own="/libpod_parent/libpod-1f")
    # Relative to what the container's mount shows (as runc resolves an absolute cgroup path
    # in a nested container) ...
    assert detect_with(tmp_path, mountinfo, own, "/ci").controller_roots["pids"] == "/c/pids/ci"
    # ... and a full hierarchy path the mount shows resolves through the mount's root.
    full = detect_with(tmp_path, mountinfo, own, "/libpod_parent/libpod-1f/ci")
    assert full.controller_roots["pids"] == "/c/pids/ci"
    with pytest.raises(CgroupError, match="must not contain '..'"):
        detect_with(tmp_path, mountinfo, own, "/ci/../../escape")


def test_detect_unified_only(unified):
    parent, files = unified
    driver = detect(**files)
    assert isinstance(driver, CgroupV2)
    assert driver.parent_dir == parent
    assert driver.controllers == ["cpu", "io", "memory", "pids"]


def test_detect_without_cgroups_is_an_error(tmp_path):
    write(str(tmp_path / "mi"), "22 27 0:21 / /proc rw - proc proc rw\n")
    write(str(tmp_path / "pc"), "0::/\n")
    with pytest.raises(CgroupError, match="no cgroup hierarchy"):
        detect(mountinfo=str(tmp_path / "mi"), proc_cgroup=str(tmp_path / "pc"))


# -- numbers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("millis,quota", [(None, -1), (1000, 100_000), (200, 20_000),
                                          (2500, 250_000), (1, 1000)])
def test_cfs_quota_from_millicores(millis, quota):
    assert cfs_quota_us(millis) == quota


def test_v2_cpu_max_format():
    assert cpu_max(200) == "20000 100000"
    assert cpu_max(None) == "max 100000"


# -- v1 backend on a fake tree ---------------------------------------------------------------------
def test_v1_layout_and_limits(hybrid):
    root, files = hybrid
    driver = detect(**files)
    driver.create_container("u1", "app", Limits(cpu_millis=200, memory_bytes=64 << 20, pids=50))
    mem = f"{root}/memory/process_api/abc/tinykube/pod-u1/app"
    assert read(f"{mem}/memory.limit_in_bytes") == str(64 << 20)
    assert not os.path.exists(f"{mem}/memory.memsw.limit_in_bytes")  # no swap accounting here
    assert read(f"{root}/cpu/tinykube/pod-u1/app/cpu.cfs_period_us") == "100000"
    assert read(f"{root}/cpu/tinykube/pod-u1/app/cpu.cfs_quota_us") == "20000"
    assert read(f"{root}/pids/tinykube/pod-u1/app/pids.max") == "50"
    assert os.path.isdir(f"{root}/cpuacct/tinykube/pod-u1/app")


def test_v1_defaults_no_memory_limit_unlimited_cpu_default_pids(hybrid):
    root, files = hybrid
    driver = detect(**files)
    driver.create_container("u1", "app", Limits())
    assert not os.path.exists(
        f"{root}/memory/process_api/abc/tinykube/pod-u1/app/memory.limit_in_bytes")
    assert read(f"{root}/cpu/tinykube/pod-u1/app/cpu.cfs_quota_us") == "-1"
    assert read(f"{root}/pids/tinykube/pod-u1/app/pids.max") == "4096"


def test_v1_caps_memsw_when_swap_accounting_exists(hybrid):
    root, files = hybrid
    driver = detect(**files)
    mem = f"{root}/memory/process_api/abc/tinykube/pod-u1/app"
    write(f"{mem}/memory.memsw.limit_in_bytes", "9223372036854771712")
    driver.create_container("u1", "app", Limits(memory_bytes=1 << 20))
    assert read(f"{mem}/memory.memsw.limit_in_bytes") == str(1 << 20)


def test_v1_counters(hybrid):
    root, files = hybrid
    driver = detect(**files)
    driver.create_container("u1", "app", Limits())
    mem = f"{root}/memory/process_api/abc/tinykube/pod-u1/app"
    write(f"{mem}/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    write(f"{mem}/memory.usage_in_bytes", "12345\n")
    write(f"{root}/cpuacct/tinykube/pod-u1/app/cpuacct.usage", "987654321\n")
    assert driver.oom_kills("u1", "app") == 2
    assert driver.memory_bytes("u1", "app") == 12345
    assert driver.cpu_usage_ns("u1", "app") == 987654321
    assert driver.oom_kills("u1", "gone") == 0


def test_v1_join_fds_one_per_hierarchy_pod_level_for_pause(hybrid):
    root, files = hybrid
    driver = detect(**files)
    driver.create_pod("u1")
    # v1 joins through `tasks` (no threadgroup rwsem; see CgroupV1.JOIN_FILE).
    for c in ("memory/process_api/abc", "cpu", "cpuacct", "pids"):
        write(f"{root}/{c}/tinykube/pod-u1/tasks", "")
    fds = driver.join_fds("u1")
    try:
        assert len(fds) == 4
        assert {os.readlink(f"/proc/self/fd/{fd}") for fd in fds} == {
            f"{root}/{c}/tinykube/pod-u1/tasks"
            for c in ("memory/process_api/abc", "cpu", "cpuacct", "pids")}
    finally:
        for fd in fds:
            os.close(fd)
    with pytest.raises(CgroupError, match="create the cgroup first"):
        driver.join_fds("u1", "nocontainer")


def test_pids_recursive_for_pod_and_pod_uids_and_remove(hybrid):
    root, files = hybrid
    driver = detect(**files)
    driver.create_pod("u1")
    driver.create_pod("u2")
    mem = f"{root}/memory/process_api/abc/tinykube"
    os.makedirs(f"{mem}/pod-u1/app")
    write(f"{mem}/pod-u1/cgroup.procs", "10\n")
    write(f"{mem}/pod-u1/app/cgroup.procs", "11\n12\n")
    assert sorted(driver.pids("u1")) == [10, 11, 12]
    assert driver.pids("u1", "app") == [11, 12]
    assert driver.pod_uids() == {"u1", "u2"}
    os.unlink(f"{mem}/pod-u1/cgroup.procs")  # a fake tree cannot rmdir dirs holding files
    os.unlink(f"{mem}/pod-u1/app/cgroup.procs")
    for uid in ("u1", "u2"):  # the pod-level pids limit (issue 15)
        pids_max = f"{root}/pids/tinykube/pod-{uid}/pids.max"
        with open(pids_max) as f:
            assert f.read() == "4096"
        os.unlink(pids_max)
    driver.remove("u1")
    driver.remove("u1")  # idempotent
    assert driver.pod_uids() == {"u2"}
    driver.remove_all()
    assert not os.path.exists(mem)


@pytest.mark.parametrize("uid,name", [("../x", None), ("u1", ".."), ("u1", "a/b"), ("", None)])
def test_names_cannot_escape_the_subtree(hybrid, uid, name):
    _, files = hybrid
    with pytest.raises(CgroupError, match="invalid"):
        detect(**files).dirs(uid, name)


# -- v2 backend on a fake tree ---------------------------------------------------------------------
def test_v2_enables_controllers_top_down_and_puts_pause_in_a_leaf(unified):
    parent, files = unified
    driver = detect(**files)
    driver.create_pod("u1")
    assert read(f"{parent}/cgroup.subtree_control") == "+cpu +io +memory +pids"
    assert read(f"{parent}/tinykube/cgroup.subtree_control") == "+cpu +io +memory +pids"
    assert read(f"{parent}/tinykube/pod-u1/cgroup.subtree_control") == "+cpu +io +memory +pids"
    assert os.path.isdir(f"{parent}/tinykube/pod-u1/_pause")
    write(f"{parent}/tinykube/pod-u1/_pause/cgroup.procs", "")
    fds = driver.join_fds("u1")
    try:
        assert [os.readlink(f"/proc/self/fd/{fd}") for fd in fds] == [
            f"{parent}/tinykube/pod-u1/_pause/cgroup.procs"]
    finally:
        for fd in fds:
            os.close(fd)


def test_v2_skips_already_enabled_controllers(unified):
    parent, files = unified
    write(f"{parent}/cgroup.subtree_control", "cpu io memory pids\n")
    detect(**files).create_pod("u1")
    assert read(f"{parent}/cgroup.subtree_control") == "cpu io memory pids\n"


def test_v2_limits(unified):
    parent, files = unified
    driver = detect(**files)
    app = f"{parent}/tinykube/pod-u1/app"
    write(f"{app}/memory.swap.max", "max")
    driver.create_container("u1", "app", Limits(cpu_millis=500, memory_bytes=1 << 20))
    assert read(f"{app}/memory.max") == str(1 << 20)
    assert read(f"{app}/memory.swap.max") == "0"
    assert read(f"{app}/cpu.max") == "50000 100000"
    assert read(f"{app}/pids.max") == "4096"
    assert not os.path.exists(f"{app}/cpu.weight")  # no request: the kernel's default


@pytest.mark.parametrize(("millis", "shares", "weight"), [
    (1, 2, 1), (10, 10, 1), (100, 102, 4), (1000, 1024, 39), (256000, 262144, 10000),
    (10**9, 262144, 10000)])
def test_cpu_request_to_shares_and_weight(millis, shares, weight):
    # The kubelet's shares (1024 per core, 2..262144) mapped onto 1..10000 as runc does.
    assert cpu_shares(millis) == shares
    assert cpu_weight(millis) == weight


def test_v2_cpu_request_sets_cpu_and_io_weight(unified):
    parent, files = unified
    driver = detect(**files)
    app = f"{parent}/tinykube/pod-u1/app"
    write(f"{app}/io.weight", "default 100\n")
    driver.create_container("u1", "app", Limits(cpu_millis=2000, cpu_request_millis=1000))
    assert read(f"{app}/cpu.weight") == "39"
    assert read(f"{app}/io.weight") == "default 39"
    assert read(f"{app}/cpu.max") == "200000 100000"


def test_v1_cpu_request_sets_shares(hybrid):
    root, files = hybrid
    detect(**files).create_container("u1", "app", Limits(cpu_request_millis=250))
    assert read(f"{root}/cpu/tinykube/pod-u1/app/cpu.shares") == "256"


def test_v2_configured_parent_is_created_with_controllers_down_to_it(unified):
    parent, files = unified
    driver = detect(parent="/user.slice/tk.scope/pods/more", **files)
    driver.create_pod("u1")
    assert read(f"{parent}/cgroup.subtree_control") == "+cpu +io +memory +pids"
    assert read(f"{parent}/pods/cgroup.subtree_control") == "+cpu +io +memory +pids"
    assert os.path.isdir(f"{parent}/pods/more/tinykube/pod-u1/_pause")


def test_v2_limits_skip_missing_controllers(tmp_path):
    write(str(tmp_path / "p/cgroup.controllers"), "pids\n")
    driver = CgroupV2(str(tmp_path / "p"))
    driver.create_container("u1", "app", Limits(cpu_millis=100, memory_bytes=1 << 20, pids=9))
    app = tmp_path / "p/tinykube/pod-u1/app"
    assert not (app / "memory.max").exists() and not (app / "cpu.max").exists()
    assert (app / "pids.max").read_text() == "9"


def test_v2_counters(unified):
    parent, files = unified
    driver = detect(**files)
    app = f"{parent}/tinykube/pod-u1/app"
    write(f"{app}/memory.events", "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n")
    write(f"{app}/cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    write(f"{app}/memory.current", "4096\n")
    assert driver.oom_kills("u1", "app") == 1
    assert driver.cpu_usage_ns("u1", "app") == 1_500_000
    assert driver.memory_bytes("u1", "app") == 4096


def test_v2_kill_all_writes_cgroup_kill(unified):
    parent, files = unified
    driver = detect(**files)
    app = f"{parent}/tinykube/pod-u1/app"
    write(f"{app}/cgroup.kill", "")
    write(f"{app}/cgroup.procs", "")
    driver.kill_all("u1", "app", signal.SIGKILL)
    assert read(f"{app}/cgroup.kill") == "1"


def test_v2_not_a_cgroup_dir(tmp_path):
    with pytest.raises(CgroupError, match="not a cgroup v2 directory"):
        CgroupV2(str(tmp_path))


def test_v1_join_args_one_dash_c_per_hierarchy(hybrid):
    driver = detect(**hybrid[1])
    driver.create_container("u1", "app", Limits())
    for path in driver.dirs("u1", "app"):
        write(f"{path}/tasks", "")
    args, fds = driver.join_args("u1", "app")
    try:
        assert args == [a for fd in fds for a in ("-c", str(fd))] and len(fds) >= 3
    finally:
        for fd in fds:
            os.close(fd)


def test_v2_join_args_is_the_cgroup_directory_for_clone3(unified):
    driver = detect(**unified[1])
    driver.create_container("u1", "app", Limits())
    for name, leaf in (("app", "app"), (None, "_pause")):
        args, fds = driver.join_args("u1", name)
        try:
            assert args == ["-K", str(fds[0])] and len(fds) == 1
            assert os.path.samefile(f"/proc/self/fd/{fds[0]}",
                                    os.path.join(driver.primary("u1"), leaf))
        finally:
            os.close(fds[0])


def test_v2_own_cgroup_shared_with_other_processes_falls_back_to_the_root(unified, tmp_path):
    # A login session's scope holds the shell too: it can never hand controllers down.
    parent, files = unified
    write(str(tmp_path / "cg2/cgroup.controllers"), "cpu io memory pids\n")
    write(f"{parent}/cgroup.procs", f"{os.getpid()}\n1\n")
    assert detect(**files).parent_dir == str(tmp_path / "cg2")
    # Alone there (a systemd unit with Delegate=yes), the daemon keeps its own cgroup.
    write(f"{parent}/cgroup.procs", f"{os.getpid()}\n")
    assert detect(**files).parent_dir == parent
    # A configured parent is used as given.
    write(f"{parent}/cgroup.procs", "1\n")
    assert detect(parent="/user.slice/tk.scope", **files).parent_dir == parent


def test_v2_enables_controllers_from_the_root_when_none_reached_the_parent_yet(tmp_path):
    # A fresh cgroup under a root whose subtree_control is still empty (a VM right after boot).
    root = tmp_path / "cg2"
    write(str(root / "cgroup.controllers"), "cpuset cpu io memory pids\n")
    write(str(root / "svc/cgroup.controllers"), "")
    driver = CgroupV2(str(root / "svc"))
    assert driver.controllers == ["cpu", "io", "memory", "pids"]
    driver.create_pod("u1")
    assert read(str(root / "cgroup.subtree_control")) == "+cpu +io +memory +pids"
    assert read(str(root / "svc/cgroup.subtree_control")) == "+cpu +io +memory +pids"
