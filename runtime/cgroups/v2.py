"""cgroup v2 backend (unified hierarchy), a few plain file writes.

v2 forbids processes in a cgroup that hands controllers to its children ("no internal
processes"), so the pause process goes into a leaf ``pod-<uid>/_pause`` (an underscore can
never be a container name, which is a DNS label) and containers into ``pod-<uid>/<name>``.
Controllers are enabled top-down through ``cgroup.subtree_control`` of the parent, the
``tinykube`` cgroup and each pod cgroup. If the parent holds processes itself (the daemon),
the kernel refuses with EBUSY: configure a parent cgroup delegated to tinykube instead.

Limits: ``memory.max`` (and ``memory.swap.max = 0`` so the limit is not softened by swap),
``cpu.max = "<quota> 100000"``, ``pids.max``. OOM kills are counted in ``memory.events``;
``cgroup.kill`` (Linux 5.14+) kills a whole cgroup at once.
"""

from __future__ import annotations

import os
import signal
import time

from .base import (
    CFS_PERIOD_US,
    DEFAULT_PIDS_LIMIT,
    EXIT_WAIT,
    SUBTREE,
    CgroupBackend,
    CgroupError,
    Limits,
    read_keyed,
    write_file,
)
from .v1 import cfs_quota_us

WANTED = ("cpu", "memory", "pids")
PAUSE_LEAF = "_pause"


def cpu_max(cpu_millis: int | None) -> str:
    quota = cfs_quota_us(cpu_millis)
    return f"{'max' if quota < 0 else quota} {CFS_PERIOD_US}"


class CgroupV2(CgroupBackend):
    version = 2

    def __init__(self, parent_dir: str, subtree: str = SUBTREE) -> None:
        super().__init__({"unified": parent_dir}, subtree)
        self.parent_dir = parent_dir
        self._subtree_ready = False
        self.controllers = self._available(parent_dir)

    @staticmethod
    def _available(path: str) -> list[str]:
        try:
            with open(os.path.join(path, "cgroup.controllers")) as f:
                present = f.read().split()
        except FileNotFoundError as e:
            raise CgroupError(f"{path} is not a cgroup v2 directory") from e
        return [c for c in WANTED if c in present]

    def _enable(self, path: str) -> None:
        if not self.controllers:
            return
        try:
            with open(os.path.join(path, "cgroup.subtree_control")) as f:
                enabled = set(f.read().split())
        except FileNotFoundError:
            enabled = set()
        todo = [c for c in self.controllers if c not in enabled]
        if todo:
            try:
                write_file(os.path.join(path, "cgroup.subtree_control"),
                           " ".join("+" + c for c in todo))
            except CgroupError as e:
                raise CgroupError(f"{e}; if {path} holds processes, run tinykube with a"
                                  " cgroup parent delegated to it") from e

    def _ensure_subtree(self) -> None:
        if self._subtree_ready:
            return
        self._enable(self.parent_dir)
        subtree = os.path.join(self.parent_dir, self.subtree)
        self.mkdir(subtree)
        self._enable(subtree)
        self._subtree_ready = True

    def create_pod(self, uid: str) -> None:
        self._ensure_subtree()
        pod = self.primary(uid)
        self.mkdir(pod)
        self._enable(pod)
        self.mkdir(os.path.join(pod, PAUSE_LEAF))
        self.apply_pod_limits(uid)

    def apply_pod_limits(self, uid: str) -> None:
        if "pids" in self.controllers:
            pids = "max" if self.pod_pids_limit is None else str(self.pod_pids_limit)
            write_file(os.path.join(self.primary(uid), "pids.max"), pids)

    def member_dirs(self, uid: str, name: str | None) -> list[str]:
        if name is None:
            return [os.path.join(self.primary(uid), PAUSE_LEAF)]
        return self.dirs(uid, name)

    def join_args(self, uid: str, name: str | None = None) -> tuple[list[str], list[int]]:
        """``-K DIRFD``: tk-shim creates the process right in the cgroup with
        clone3(CLONE_INTO_CGROUP), no migration through cgroup.procs."""
        path = self.member_dirs(uid, name)[0]
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise CgroupError(f"opening {path}: {e.strerror} (create the cgroup first)") from e
        return ["-K", str(fd)], [fd]

    def apply_limits(self, uid: str, name: str, limits: Limits) -> None:
        path = self.primary(uid, name)
        if "memory" in self.controllers and limits.memory_bytes is not None:
            write_file(os.path.join(path, "memory.max"), str(limits.memory_bytes))
            if os.path.exists(os.path.join(path, "memory.swap.max")):
                write_file(os.path.join(path, "memory.swap.max"), "0")
        if "cpu" in self.controllers:
            write_file(os.path.join(path, "cpu.max"), cpu_max(limits.cpu_millis))
        if "pids" in self.controllers:
            pids = limits.pids if limits.pids is not None else DEFAULT_PIDS_LIMIT
            write_file(os.path.join(path, "pids.max"), str(pids))

    def kill_all(self, uid: str, name: str | None = None, sig: int = signal.SIGKILL) -> None:
        kill_file = os.path.join(self.primary(uid, name), "cgroup.kill")
        if sig == signal.SIGKILL and os.path.exists(kill_file):
            write_file(kill_file, "1")
            deadline = time.monotonic() + EXIT_WAIT
            while self.pids(uid, name) and time.monotonic() < deadline:
                time.sleep(0.005)
        super().kill_all(uid, name, sig)

    def oom_kills(self, uid: str, name: str) -> int:
        return read_keyed(os.path.join(self.primary(uid, name), "memory.events")).get("oom_kill", 0)

    def cpu_usage_ns(self, uid: str, name: str) -> int:
        stat = read_keyed(os.path.join(self.primary(uid, name), "cpu.stat"))
        return stat.get("usage_usec", 0) * 1000

    def memory_bytes(self, uid: str, name: str) -> int:
        try:
            with open(os.path.join(self.primary(uid, name), "memory.current")) as f:
                return int(f.read())
        except FileNotFoundError:
            return 0
