"""What the runtime needs from cgroups, independent of the kernel's cgroup version.

Layout (names derived from the pod uid, so teardown and the start-up sweep need no record):

    <parent>/tinykube/pod-<uid>/              pod cgroup (v1: the pause process sits here)
    <parent>/tinykube/pod-<uid>/<container>   one per container, carries the limits

``<parent>`` is the cgroup the daemon itself runs in (per hierarchy, from
``/proc/self/cgroup``) unless a parent is configured. Numbers are plain: CPU in millicores,
memory in bytes, pids as a count; parsing Kubernetes quantities is the model's job.

:class:`CgroupBackend` holds everything that is the same for v1 and v2 (directories, procs,
kill, remove with retry); ``v1.py`` and ``v2.py`` only add how limits and counters are
read and written. Methods are synchronous file I/O (microseconds); ``kill_all`` and
``remove`` may wait up to ``EXIT_WAIT`` seconds for dying processes, so call them from
``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from ..layout import component

SUBTREE = "tinykube"
POD_PREFIX = "pod-"
# A container gets this pids limit when its spec sets none: stops a fork bomb in one pod from
# exhausting the machine's pid space (kernel default pid_max is 32768 on small machines)
# while leaving ample room for real workloads.
DEFAULT_PIDS_LIMIT = 4096
# The whole pod (pause and every container) gets this pids limit unless the daemon is told
# otherwise (--pod-max-pids; the kubelet's --pod-max-pids, whose default is unlimited): one
# pod's fork bomb then cannot take the host's pids even with several containers.
DEFAULT_POD_PIDS_LIMIT = 4096
CFS_PERIOD_US = 100_000
EXIT_WAIT = 2.0  # seconds to wait for killed processes to leave a cgroup


class CgroupError(Exception):
    """A cgroup operation failed; the message names the cgroup path and the reason."""


@dataclass(frozen=True)
class Limits:
    cpu_millis: int | None = None
    memory_bytes: int | None = None
    pids: int | None = None
    # requests.cpu: the container's share of CPU under contention (v1 cpu.shares, v2
    # cpu.weight and io.weight); None (no request): the kernel's default share.
    cpu_request_millis: int | None = None


MIN_SHARES, MAX_SHARES = 2, 262144


def cpu_shares(request_millis: int) -> int:
    """The kubelet's conversion of a CPU request to v1 cpu.shares (1024 per core)."""
    return min(MAX_SHARES, max(MIN_SHARES, request_millis * 1024 // 1000))


def cpu_weight(request_millis: int) -> int:
    """v2 cpu.weight (1..10000) for a CPU request: the shares mapped linearly, as runc and
    crun convert them, so a pod gets the same share on either cgroup version."""
    return 1 + (cpu_shares(request_millis) - MIN_SHARES) * 9999 // (MAX_SHARES - MIN_SHARES)


class CgroupDriver(Protocol):
    version: int
    pod_pids_limit: int | None
    renames_pods: bool  # whether rename_pod works (v1 only: cgroup2 has no rename)

    def create_pod(self, uid: str) -> None: ...
    def create_container(self, uid: str, name: str, limits: Limits) -> None: ...
    def join_fds(self, uid: str, name: str | None = None) -> list[int]: ...
    def join_args(self, uid: str, name: str | None = None) -> tuple[list[str], list[int]]: ...
    def pids(self, uid: str, name: str | None = None) -> list[int]: ...
    def oom_kills(self, uid: str, name: str) -> int: ...
    def cpu_usage_ns(self, uid: str, name: str) -> int: ...
    def memory_bytes(self, uid: str, name: str) -> int: ...
    def kill_all(self, uid: str, name: str | None = None, sig: int = signal.SIGKILL) -> None: ...
    def remove(self, uid: str, name: str | None = None) -> None: ...
    def rename_pod(self, old_uid: str, new_uid: str) -> None: ...
    def pod_uids(self) -> set[str]: ...
    def remove_all(self) -> None: ...


def check_name(kind: str, value: str) -> None:
    """Refuse names that would escape the tinykube subtree (``..``, ``/``, empty)."""
    component(value, f"cgroup name from {kind}", CgroupError)


def read_procs(path: str) -> list[int]:
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return [int(line) for line in f.read().split()]
    except FileNotFoundError:
        return []


def read_keyed(path: str) -> dict[str, int]:
    """Parse a flat keyed file (``key value`` per line), e.g. memory.events or oom_control."""
    result: dict[str, int] = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                    result[parts[0]] = int(parts[1])
    except FileNotFoundError:
        pass
    return result


def write_file(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise CgroupError(f"writing {value!r} to {path}: {e.strerror}") from e


def walk_bottom_up(path: str) -> Iterator[str]:
    """``path`` and its sub-cgroups, children before parents (the order rmdir needs)."""
    if not os.path.isdir(path):
        return
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            yield from walk_bottom_up(entry.path)
    yield path


class CgroupBackend:
    """Shared mechanics over one or more hierarchies (v1: one per controller; v2: one).

    ``roots`` maps a hierarchy label to the directory that holds the ``tinykube`` subtree in
    it. The first root is the primary one, used for reading membership.
    """

    version = 0
    pod_pids_limit: int | None = DEFAULT_POD_PIDS_LIMIT  # None: no pod-level limit
    renames_pods = True

    def __init__(self, roots: dict[str, str], subtree: str = SUBTREE) -> None:
        if not roots:
            raise CgroupError("no cgroup hierarchies to use")
        check_name("cgroup subtree", subtree)
        self.roots = roots
        # One subtree per daemon instance: two daemons on a host (tests run many) must never
        # see, sweep or reset each other's pods.
        self.subtree = subtree

    # -- paths -------------------------------------------------------------------------
    def subtree_dirs(self) -> list[str]:
        return [os.path.join(root, self.subtree) for root in self.roots.values()]

    def dirs(self, uid: str, name: str | None = None) -> list[str]:
        check_name("pod uid", uid)
        parts = [self.subtree, POD_PREFIX + uid]
        if name is not None:
            check_name("container name", name)
            parts.append(name)
        return [os.path.join(root, *parts) for root in self.roots.values()]

    def primary(self, uid: str, name: str | None = None) -> str:
        return self.dirs(uid, name)[0]

    def member_dirs(self, uid: str, name: str | None) -> list[str]:
        """Directories whose cgroup.procs a process writes to join (pod- or container-level)."""
        return self.dirs(uid, name)

    # -- lifecycle -----------------------------------------------------------------------
    def create_pod(self, uid: str) -> None:
        for path in self.dirs(uid):
            self.mkdir(path)
        self.apply_pod_limits(uid)

    def apply_pod_limits(self, uid: str) -> None:
        raise NotImplementedError

    def rename_pod(self, old_uid: str, new_uid: str) -> None:
        """Give a pod cgroup (with its processes) another uid's name: a warm sandbox's
        becomes its pod's. Per hierarchy, so a crash half-way leaves both names, each of
        which teardown finds by its uid."""
        for old, new in zip(self.dirs(old_uid), self.dirs(new_uid), strict=True):
            try:
                os.rename(old, new)
            except OSError as e:
                raise CgroupError(f"renaming {old} to {new}: {e.strerror}") from e

    def create_container(self, uid: str, name: str, limits: Limits) -> None:
        self.create_pod(uid)
        for path in self.dirs(uid, name):
            self.mkdir(path)
        self.apply_limits(uid, name, limits)

    def mkdir(self, path: str) -> None:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as e:
            raise CgroupError(f"creating cgroup {path}: {e.strerror}") from e

    def apply_limits(self, uid: str, name: str, limits: Limits) -> None:
        raise NotImplementedError

    # The file a process writes b"0" to, to join (see CgroupV1.JOIN_FILE).
    JOIN_FILE = "cgroup.procs"

    def join_fds(self, uid: str, name: str | None = None) -> list[int]:
        """Open the join file (``JOIN_FILE``) of the pod (name=None, for the pause) or a
        container cgroup.

        tk-shim writes ``b"0"`` to each (``-c FD``), so the process is in the cgroup before exec.
        The caller closes the fds after the spawn. Missing cgroups are an error.
        """
        fds: list[int] = []
        try:
            for path in self.member_dirs(uid, name):
                fds.append(os.open(os.path.join(path, self.JOIN_FILE),
                                   os.O_WRONLY | os.O_CLOEXEC))
        except OSError as e:
            for fd in fds:
                os.close(fd)
            raise CgroupError(f"opening {e.filename}: {e.strerror}"
                              " (create the cgroup first)") from e
        return fds

    def join_args(self, uid: str, name: str | None = None) -> tuple[list[str], list[int]]:
        """tk-shim arguments that put the spawned process into the pod's (name=None) or a
        container's cgroup, and the fds they name (the caller passes them down, then closes
        them). v1: ``-c FD`` per hierarchy, the shim writes 0 to each JOIN_FILE."""
        fds = self.join_fds(uid, name)
        return [arg for fd in fds for arg in ("-c", str(fd))], fds

    def pids(self, uid: str, name: str | None = None) -> list[int]:
        """Processes in a container cgroup, or with name=None in the whole pod (recursive)."""
        top = self.primary(uid, name)
        if name is not None:
            return read_procs(top)
        return [pid for path in walk_bottom_up(top) for pid in read_procs(path)]

    def kill_all(self, uid: str, name: str | None = None, sig: int = signal.SIGKILL) -> None:
        """Signal every process of the cgroup (recursive). For SIGKILL, repeat until the cgroup
        is empty, so that processes forked meanwhile are caught too."""
        deadline = time.monotonic() + EXIT_WAIT
        while True:
            pids = self.pids(uid, name)
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            if sig != signal.SIGKILL:
                return
            # Killed processes leave cgroup.procs once they are reaped by their parent
            # (or right away if it ignores SIGCHLD); a zombie child of ours stays until we reap.
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)

    def remove(self, uid: str, name: str | None = None) -> None:
        """Remove a container cgroup, or the whole pod's (name=None). Idempotent. Retries while
        processes are still exiting; CgroupError if some remain after EXIT_WAIT."""
        for top in self.dirs(uid, name):
            for path in walk_bottom_up(top):
                self.rmdir_retry(path)

    def rmdir_retry(self, path: str) -> None:
        deadline = time.monotonic() + EXIT_WAIT
        while True:
            try:
                os.rmdir(path)
                return
            except FileNotFoundError:
                return
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise CgroupError(f"removing cgroup {path}: {e.strerror}"
                                      f" (processes left: {read_procs(path)})") from e
            time.sleep(0.01)

    def pod_uids(self) -> set[str]:
        uids: set[str] = set()
        for subtree in self.subtree_dirs():
            try:
                entries = os.listdir(subtree)
            except FileNotFoundError:
                continue
            uids.update(e[len(POD_PREFIX):] for e in entries
                        if e.startswith(POD_PREFIX)
                        and os.path.isdir(os.path.join(subtree, e)))
        return uids

    def remove_all(self) -> None:
        """Kill every process in tinykube's subtree and remove all of it (``tinykube reset``)."""
        for uid in self.pod_uids():
            self.kill_all(uid)
            self.remove(uid)
        for subtree in self.subtree_dirs():
            self.rmdir_retry(subtree)

    # -- counters (backend-specific) ---------------------------------------------------------
    def oom_kills(self, uid: str, name: str) -> int:
        raise NotImplementedError

    def cpu_usage_ns(self, uid: str, name: str) -> int:
        raise NotImplementedError

    def memory_bytes(self, uid: str, name: str) -> int:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.roots}>"
