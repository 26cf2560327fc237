"""cgroup v1 backend: one hierarchy per controller (memory, cpu, cpuacct, pids).

cgroupspy reads and writes the memory and cpu files; it has no pids controller, so
``pids.max`` is a plain file write. A process joins by writing ``0`` to ``tasks`` in every
hierarchy (``join_fds`` returns one fd per hierarchy). v1 has no "no internal processes" rule,
so the pause process sits in the pod cgroup itself and containers in its children.

OOM: ``memory.oom_control`` counts ``oom_kill`` per cgroup (kernel >= 4.13). CPU: CFS quota
over a 100 ms period, ``quota_us = millicores * 100`` (1000m = one full CPU).
"""

from __future__ import annotations

import os

from cgroupspy.controllers import CpuAcctController, CpuController, MemoryController

from .base import (
    CFS_PERIOD_US,
    DEFAULT_PIDS_LIMIT,
    SUBTREE,
    CgroupBackend,
    CgroupError,
    Limits,
    cpu_shares,
    write_file,
)

# The order matters: the first is the primary hierarchy used to read membership.
CONTROLLERS = ("memory", "cpu", "cpuacct", "pids")
MIN_CFS_QUOTA_US = 1000  # the kernel refuses quotas below 1 ms


class _PathNode:
    """The one attribute cgroupspy's controllers use from a tree node. Not its own `Node`:
    that infers the controller from the directory name under /sys/fs/cgroup (no co-mounted
    `cpu,cpuacct`, no other roots) and its `Tree` walks the whole host (docs/CONTRACTS.md)."""

    def __init__(self, path: str) -> None:
        self.full_path = path.encode()


def cfs_quota_us(cpu_millis: int | None) -> int:
    if cpu_millis is None:
        return -1
    return max(MIN_CFS_QUOTA_US, cpu_millis * CFS_PERIOD_US // 1000)


class CgroupV1(CgroupBackend):
    version = 1
    # `tasks`, not `cgroup.procs`: tk-shim joins while it is single-threaded, so moving its
    # one thread moves the process, and the kernel moves the *current* thread without the
    # global threadgroup rwsem. A cgroup.procs write takes that rwsem for writing, which after
    # a quiet spell waits for an RCU grace period: ~10 ms of every pod start here, against
    # 0.2-0.4 ms through `tasks` (measured on this host's 6.x kernel).
    JOIN_FILE = "tasks"

    def __init__(self, controller_roots: dict[str, str], subtree: str = SUBTREE) -> None:
        """``controller_roots``: controller name -> directory that holds ``tinykube/``.
        Co-mounted controllers (``cpu,cpuacct``) share a directory; it is used once."""
        missing = [c for c in CONTROLLERS if c not in controller_roots]
        if missing:
            raise CgroupError(f"cgroup v1 controllers not mounted: {', '.join(missing)}")
        self.controller_roots = {c: controller_roots[c] for c in CONTROLLERS}
        unique: dict[str, str] = {}
        for controller, root in self.controller_roots.items():
            if root not in unique.values():
                unique[controller] = root
        super().__init__(unique, subtree)

    def _dir(self, controller: str, uid: str, name: str | None) -> str:
        root = self.controller_roots[controller]
        return next(d for d, r in zip(self.dirs(uid, name), self.roots.values()) if r == root)

    def apply_pod_limits(self, uid: str) -> None:
        pids = "max" if self.pod_pids_limit is None else str(self.pod_pids_limit)
        write_file(os.path.join(self._dir("pids", uid, None), "pids.max"), pids)

    def apply_limits(self, uid: str, name: str, limits: Limits) -> None:
        memory = MemoryController(_PathNode(self._dir("memory", uid, name)))
        cpu = CpuController(_PathNode(self._dir("cpu", uid, name)))
        try:
            if limits.memory_bytes is not None:
                memory.limit_in_bytes = limits.memory_bytes
                # With swap, memory+swap must be capped too or the limit only causes swapping.
                if os.path.exists(memory.filepath(b"memory.memsw.limit_in_bytes")):
                    memory.memsw_limit_in_bytes = limits.memory_bytes
            cpu.cfs_period_us = CFS_PERIOD_US
            cpu.cfs_quota_us = cfs_quota_us(limits.cpu_millis)
            if limits.cpu_request_millis is not None:
                cpu.shares = cpu_shares(limits.cpu_request_millis)
        except OSError as e:
            raise CgroupError(f"setting limits of cgroup {uid}/{name} ({limits}):"
                              f" {e.strerror} ({e.filename})") from e
        pids = limits.pids if limits.pids is not None else DEFAULT_PIDS_LIMIT
        write_file(os.path.join(self._dir("pids", uid, name), "pids.max"), str(pids))

    def oom_kills(self, uid: str, name: str) -> int:
        memory = MemoryController(_PathNode(self._dir("memory", uid, name)))
        try:
            control = memory.oom_control
        except FileNotFoundError:
            return 0
        return int(control.get("oom_kill", 0)) if isinstance(control, dict) else 0

    def cpu_usage_ns(self, uid: str, name: str) -> int:
        try:
            return int(CpuAcctController(_PathNode(self._dir("cpuacct", uid, name))).usage)
        except FileNotFoundError:
            return 0

    def memory_bytes(self, uid: str, name: str) -> int:
        try:
            return int(MemoryController(_PathNode(self._dir("memory", uid, name))).usage_in_bytes)
        except FileNotFoundError:
            return 0
