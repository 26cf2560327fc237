"""cgroup v2 backend (unified hierarchy), a few plain file writes.

v2 forbids processes in a cgroup that hands controllers to its children ("no internal
processes"), so the pause process goes into a leaf ``pod-<uid>/_pause`` (an underscore can
never be a container name, which is a DNS label) and containers into ``pod-<uid>/<name>``.
Delegation: controllers are enabled top-down through ``cgroup.subtree_control``, from the
nearest existing ancestor of the parent (a configured ``--cgroup-parent`` that does not exist
yet is created) through the parent, the ``tinykube`` cgroup and each pod cgroup. A cgroup
with processes cannot hand controllers down (EBUSY). When the only process in the way is the
daemon itself (a systemd unit with ``Delegate=yes`` starts it alone in the unit's cgroup), it
moves itself into the leaf ``<that cgroup>/<subtree>.daemon``, as systemd asks of delegated
services; other processes there are an error naming them (tinykube never moves processes it
does not own).

Limits: ``memory.max`` (and ``memory.swap.max = 0`` so the limit is not softened by swap),
``cpu.max = "<quota> 100000"``, ``cpu.weight`` and ``io.weight`` from the CPU request,
``pids.max``. OOM kills are counted in ``memory.events``; ``cgroup.kill`` (Linux 5.14+) kills
a whole cgroup at once. Processes are created inside their cgroup by tk-shim
(clone3 ``CLONE_INTO_CGROUP``, see ``join_args``).
"""

from __future__ import annotations

import errno
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
    cpu_weight,
    read_keyed,
    read_procs,
    write_file,
)
from .v1 import cfs_quota_us

WANTED = ("cpu", "io", "memory", "pids")
PAUSE_LEAF = "_pause"


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def cpu_max(cpu_millis: int | None) -> str:
    quota = cfs_quota_us(cpu_millis)
    return f"{'max' if quota < 0 else quota} {CFS_PERIOD_US}"


class CgroupV2(CgroupBackend):
    version = 2
    # The kernel's cgroup2 filesystem has no rename (only v1's has): warm sandboxes, which
    # are handed to a pod by renaming their cgroup, are off on v2.
    renames_pods = False

    def __init__(self, parent_dir: str, subtree: str = SUBTREE) -> None:
        super().__init__({"unified": parent_dir}, subtree)
        self.parent_dir = parent_dir
        self._subtree_ready = False
        # What the kernel offers (the hierarchy's root), not just what reached the parent yet:
        # _make_parent enables them down to it.
        self.controllers = self._available(self._hierarchy_root(parent_dir))

    @staticmethod
    def _existing_ancestor(path: str) -> str:
        """``path``, or its nearest ancestor that is a cgroup (a configured parent may not
        exist yet)."""
        while not os.path.exists(os.path.join(path, "cgroup.controllers")):
            up = os.path.dirname(path)
            if up == path:
                break
            path = up
        return path

    @classmethod
    def _hierarchy_root(cls, path: str) -> str:
        top = cls._existing_ancestor(path)
        while os.path.exists(os.path.join(os.path.dirname(top), "cgroup.controllers")) \
                and os.path.dirname(top) != top:
            top = os.path.dirname(top)
        return top

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
        if not todo:
            return
        control = os.path.join(path, "cgroup.subtree_control")
        wanted = " ".join("+" + c for c in todo)
        try:
            write_file(control, wanted)
            return
        except CgroupError as e:
            if not isinstance(e.__cause__, OSError) or e.__cause__.errno != errno.EBUSY:
                raise
            busy = e
        # "No internal processes": step out of the way if the daemon (and children it is
        # running just now, an `nft` say) is all that is there.
        me = os.getpid()
        others = [pid for pid in read_procs(path) if pid != me and _parent_of(pid) != me]
        if others or me not in read_procs(path):
            raise CgroupError(
                f"{busy}: cgroup v2 lets only a cgroup without processes hand controllers to"
                f" its children, and {path} holds processes {others[:10]}. Run tinykube as a"
                f" systemd service with Delegate=yes (contrib/tinykube.service), start it in"
                f" a cgroup of its own, or give --cgroup-parent a cgroup delegated to it")
        leaf = os.path.join(path, f"{self.subtree}.daemon")
        self.mkdir(leaf)
        write_file(os.path.join(leaf, "cgroup.procs"), str(me))
        # Children started before the move stay behind until they exit (they are short-lived).
        deadline = time.monotonic() + EXIT_WAIT
        while True:
            try:
                write_file(control, wanted)
                return
            except CgroupError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.01)

    def _make_parent(self) -> None:
        """The parent (created if missing) with the controllers handed down to it: enabled in
        every cgroup from the nearest ancestor that already has them all down to the parent."""
        chain = []
        path = self.parent_dir
        while True:
            chain.append(path)
            try:
                with open(os.path.join(path, "cgroup.controllers")) as f:
                    if set(self.controllers) <= set(f.read().split()):
                        break
            except FileNotFoundError:
                pass
            up = os.path.dirname(path)
            # Missing levels are created too; an existing non-cgroup is above the mount.
            if up == path or (os.path.isdir(up)
                              and not os.path.exists(os.path.join(up, "cgroup.controllers"))):
                break
            path = up
        for path in reversed(chain):
            self.mkdir(path)
            self._enable(path)

    def _ensure_subtree(self) -> None:
        if self._subtree_ready:
            return
        self._make_parent()
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
            if limits.cpu_request_millis is not None:
                write_file(os.path.join(path, "cpu.weight"),
                           str(cpu_weight(limits.cpu_request_millis)))
        # io.weight exists only where the kernel can weigh I/O (BFQ or blk-iocost).
        io_weight = os.path.join(path, "io.weight")
        if ("io" in self.controllers and limits.cpu_request_millis is not None
                and os.path.exists(io_weight)):
            write_file(io_weight, f"default {cpu_weight(limits.cpu_request_millis)}")
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
