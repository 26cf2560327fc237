"""Start a container process inside a pod sandbox, wait for it, and exec into it.

``spawn_container`` plans in Python and lets ``tk-shim`` (C) act: the shim, spawned by vfork
from a worker thread, joins the container cgroup (``b"0"`` to pre-opened ``cgroup.procs``
fds), ``setns`` into the pause's net/uts/ipc namespaces via pre-opened ``/proc/<pause>/ns/*``
fds, unshares a mount namespace, makes ``/`` rprivate and executes the mount plan (passed in
a memfd, see ``encode_plan``); then it runs the app (as the container's uid/gid), forwards
signals and records its exit code in ``exit_file``. stdout+stderr go to ``log_path``
(appended), stdin is /dev/null.

Mount targets that do not exist (``/data``, ``/usr/share/nginx/html``) need a mount point, and
the host's filesystem must never change. The choice here, "mirror the deepest existing
ancestor": a tmpfs is mounted over that ancestor and each of its entries is bound back from
the host (``/proc/self/fd/<O_PATH fd of the ancestor>/<entry>``, recursive binds, symlinks
recreated), then the missing path is created on the tmpfs. Only one directory level is
re-created; everything else is the host's and writes below it reach the host as for any
process (only new entries created directly in the mirrored directory stay on the tmpfs). When
the ancestor is ``/`` itself the tmpfs cannot simply cover ``/``: it is built at a staging
directory (the container's log directory, invisible afterwards), then moved onto ``/`` and
``chroot``-ed into (``MS_MOVE`` + ``chroot``, which ``setns`` for exec also lands on).
Measured on this machine (2 loaded cores): the mount step itself costs ~0.2 ms for file
binds over existing targets (``/etc/hosts``, ``/etc/hostname``, ``/etc/resolv.conf``),
~1.5 ms with a new top-level target (the ``/`` mirror, ~25 entries) and ~4.5 ms for
``/usr/share/nginx/html`` (~100 entries re-bound); a whole spawn is ~11-15 ms when the
machine is quiet. The cost that dominates is not the mounts but joining the cgroup: a v1
``cgroup.procs`` write takes the threadgroup rwsem and waits an RCU grace period (1-17 ms,
more under load); v2's ``CLONE_INTO_CGROUP`` would avoid it. Alternatives measured in
PLATFORM.md: a full tmpfs root + ``pivot_root`` (~12 ms, and still needs this trick for deep
targets); an overlay of ``/`` (hides the container's writes from the host and is undefined
when the host changes underneath it).

Why the shim and not a Python ``preexec_fn`` (the first version): a preexec_fn forces a full
fork() of the daemon (11 ms at its size, growing with it) where a plain spawn uses vfork
(1.3 ms); the set-up steps are a handful of syscalls that C does without ceremony. uid/gid are
dropped by tk-shim for the app only (the shim must stay root to write the exit file).

``wait_exit`` waits on a pidfd (no polling) and works for processes of an earlier daemon
too: it cannot reap those, so it reads the exit file tk-shim wrote.
"""

from __future__ import annotations

import enum
import os
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import trio

from . import syscalls
from .cgroups import CgroupDriver
from .sandbox import (
    Sandbox,
    SpawnError,
    reap,
    register_child,
    shim_spawn,
    wait_pid_exit,
)
from .shim import shim_path

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EXIT_CODE_UNKNOWN = -1  # no exit file and not our child: the shim itself was killed
POD_NAMESPACES = (("net", syscalls.CLONE_NEWNET), ("uts", syscalls.CLONE_NEWUTS),
                  ("ipc", syscalls.CLONE_NEWIPC))
# The pause's mount namespace holds the pod's /dev/shm: a container's starts as its copy.
MOUNT_NAMESPACE = ("mnt", syscalls.CLONE_NEWNS)
# A process's pid_for_children: the PID namespace its children (and a setns-ing shim's) get.
PID_NAMESPACE = ("pid_for_children", syscalls.CLONE_NEWPID)


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    readonly: bool = False


class PidNamespace(enum.Enum):
    CONTAINER = "container"  # Kubernetes' default: the app is PID 1 of its own namespace
    POD = "pod"              # shareProcessNamespace: the pause's, which is PID 1 there
    HOST = "host"            # hostPID


@dataclass(frozen=True)
class Isolation:
    """How a container is confined; containerspec.isolation computes it from the spec. The
    defaults are a default Kubernetes container's; ``Isolation.none()`` is a process that is
    root on the host (no pid namespace, every capability, writable host) as before."""
    pid_namespace: PidNamespace = PidNamespace.CONTAINER
    capabilities: int | None = None  # the bounding set as a bit mask; None: all of them
    seccomp: bool = True              # RuntimeDefault
    no_new_privs: bool = False        # allowPrivilegeEscalation: false
    readonly_host: bool = True        # the host tree read-only, writable: volumes, /tmp, shm
    masked_paths: bool = True         # /proc and /sys paths masked or read-only
    private_tmp: bool = True
    groups: tuple[int, ...] = ()      # supplementary groups (supplementalGroups, fsGroup)
    hidden: tuple[str, ...] = ()      # the daemon's root, run dir and socket

    @classmethod
    def none(cls) -> Isolation:
        return cls(pid_namespace=PidNamespace.HOST, capabilities=None, seccomp=False,
                   readonly_host=False, masked_paths=False, private_tmp=False)


@dataclass(frozen=True)
class ContainerLaunch:
    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    uid: int | None
    gid: int | None
    mounts: list[Mount] = field(default_factory=list)
    log_path: str = ""
    exit_file: str = ""
    isolation: Isolation = field(default_factory=Isolation)
    # Rotation of log_path by tk-shim (0: none): kubelet's containerLogMaxSize/MaxFiles.
    log_max_bytes: int = 0
    log_max_files: int = 5


@dataclass(frozen=True)
class ContainerProcess:
    """A running container: the tk-shim's pid and start time (they identify it across pid
    reuse and daemon restarts) and where the shim writes the exit code."""
    pid: int
    start_time: int
    exit_file: str = ""


# -- mount plan: computed here, executed by tk-shim before it runs the app -----------------------
# Ops are plain tuples; encode_plan turns them into the tokens tk-shim's run_plan executes:
#   ("reroot", staging, mode, entries)  tmpfs at staging, host "/" entries bound in, moved to /
#   ("mirror", path, mode, entries)     tmpfs over path, its host entries bound back
#   ("mkdir", path) / ("touch", path)   mount points on our tmpfs
#   ("bind", source, target, readonly)
# entries: (name, kind, link_target) with kind "dir" | "file" | "link".
Entry = tuple[str, str, str]
Op = tuple


def scan_dir(path: str) -> list[Entry]:
    entries: list[Entry] = []
    with os.scandir(path) as it:
        for e in it:
            if e.is_symlink():
                entries.append((e.name, "link", os.readlink(e.path)))
            elif e.is_dir(follow_symlinks=False):
                entries.append((e.name, "dir", ""))
            else:
                entries.append((e.name, "file", ""))
    return entries


def plan_mounts(mounts: Iterable[Mount], staging: str, *,
                fresh: Iterable[str] = (),
                lexists: Callable[[str], bool] = os.path.lexists,
                isdir: Callable[[str], bool] = os.path.isdir,
                realpath: Callable[[str], str] = os.path.realpath,
                scan: Callable[[str], list[Entry]] = scan_dir,
                mode_of: Callable[[str], int] = lambda p: os.stat(p).st_mode & 0o7777,
                ) -> list[Op]:
    """The mount operations that put each mount at its target without touching the host.
    Shallow targets first, so a mount inside another mount's target lands on top of it.
    ``fresh``: directories that will be empty tmpfs mounts of ours (the private /tmp): what
    the host has below them is not there."""
    ours: set[str] = set(fresh)  # directories on a tmpfs of ours: free to create entries in
    empty: set[str] = set(fresh)  # ... of which nothing but what we create exists
    binds: dict[str, str] = {}  # directory binds placed so far: container path -> host source
    ops: list[Op] = []
    reroot: list[Op] = []

    def in_volume(path: str) -> str | None:
        """Where `path` is on the host if an earlier bind (a volume at /etc, say) covers it:
        below a volume, the volume's content decides what exists, not the host's."""
        for target in sorted(binds, key=len, reverse=True):
            if path == target or path.startswith(target + "/"):
                return binds[target] + path[len(target):]
        return None

    for m in sorted(mounts, key=lambda m: os.path.normpath(m.target).count("/")):
        if not os.path.isabs(m.target):
            raise SpawnError(f"mount target {m.target!r} must be an absolute path")
        parts = [p for p in os.path.normpath(m.target).split("/") if p]
        if not parts:
            raise SpawnError(f"mount target {m.target!r}: cannot mount over /")
        existing, i = "/", 0
        while i < len(parts):
            nxt = os.path.join(existing, parts[i])
            inside = in_volume(nxt)
            if nxt in ours:
                existing = nxt
            elif inside is not None:
                if not lexists(inside):
                    break
                existing = nxt  # never resolved on the host: the volume is the pod's view
            elif existing not in empty and lexists(nxt):
                existing = realpath(nxt)
            else:
                break
            i += 1
        missing = parts[i:]
        if missing and in_volume(existing) is not None:
            # Like runc, create the mount point inside the volume (it is the pod's own).
            ours.add(existing)
        if missing and existing not in ours:
            if existing == "/":
                entries = sorted(scan("/"), key=lambda e: not staging.startswith(f"/{e[0]}/"))
                reroot.append(("reroot", staging, mode_of("/"), entries))
            else:
                if not isdir(existing):
                    raise SpawnError(f"mount target {m.target!r}: {existing} is not a directory")
                ops.append(("mirror", existing, mode_of(existing), scan(existing)))
            ours.add(existing)
        path = existing
        for j, name in enumerate(missing):
            path = os.path.join(path, name)
            last = j == len(missing) - 1
            ops.append(("touch", path) if last and not isdir(m.source) else ("mkdir", path))
            ours.add(path)
            if not last:
                empty.add(path)
        empty.discard(path)  # a bind target shows the source's entries
        ops.append(("bind", m.source, path, m.readonly))
        if isdir(m.source):
            binds[os.path.normpath(path)] = os.path.normpath(m.source)
    return reroot + ops


# containerd's masked and read-only paths (runc applies them after mounting /proc).
MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                "/sys/devices/virtual/powercap")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
PRIVATE_TMP = "/tmp"
POD_SHM = "/dev/shm"
POD_SHM_OPTIONS = "mode=1777,size=65536k"  # containerd's sandbox /dev/shm: 64 MiB


def container_plan(mounts: Iterable[Mount], staging: str, isolation: Isolation,
                   **fs: Callable) -> list[Op]:
    """The whole mount plan of a container: its mounts (plan_mounts) inside the isolation.
    Order matters: the host tree turns read-only first (later mounts of ours stay writable
    and undo the inherited flag on volumes), the private /tmp comes before the mounts that
    may land in it, and the daemon's paths are hidden last (bind sources were opened by
    tk-shim before any op, so a volume under the daemon's root still comes in). /proc is
    mounted by the app's process, the only one in its PID namespace."""
    mounts = list(mounts)
    fresh = (PRIVATE_TMP,) if isolation.private_tmp else ()
    planned = plan_mounts(mounts, staging, fresh=fresh, **fs)
    reroot = [op for op in planned if op[0] == "reroot"]
    rest = [op for op in planned if op[0] != "reroot"]
    ops: list[Op] = [("readonly",)] if isolation.readonly_host else []
    ops += reroot
    if isolation.private_tmp:
        ops.append(("tmpfs", PRIVATE_TMP, "mode=1777"))
    ops += rest
    if isolation.readonly_host:
        ops.append(("rw", POD_SHM))
        ops += [("seal", op[1]) for op in rest if op[0] == "mirror"]
        ops += [("seal", "/") for _ in reroot]
    # A volume at (or above) a daemon path already replaces it in the container; hiding the
    # path there would hide the volume instead (an emptyDir at the daemon's root: the app saw
    # an empty read-only directory, not its volume).
    targets = [os.path.normpath(m.target) for m in mounts]
    ops += [("hide", path) for path in isolation.hidden
            if not any(path == t or path.startswith(t.rstrip("/") + "/") for t in targets)]
    if isolation.pid_namespace is not PidNamespace.HOST or isolation.masked_paths:
        ops += [("child",), ("proc",)]
    if isolation.masked_paths:
        ops += [("mask", path) for path in MASKED_PATHS]
        ops += [("robind", path) for path in READONLY_PATHS]
    return ops


def encode_plan(ops: list[Op]) -> bytes:
    """The plan as tk-shim reads it: NUL-separated tokens (see run_plan in tk-shim.c)."""
    tokens: list[str] = []
    for op in ops:
        kind = op[0]
        if kind == "bind":
            _, source, target, readonly = op
            tokens += ["bind", source, target, "1" if readonly else "0"]
        elif kind in ("mkdir", "touch", "hide", "mask", "seal", "rw", "robind"):
            tokens += [kind, op[1]]
        elif kind in ("readonly", "child", "proc", "rslave"):
            tokens.append(kind)
        elif kind == "tmpfs":
            tokens += [kind, op[1], op[2]]
        elif kind in ("mirror", "reroot"):
            _, path, mode, entries = op
            tokens += [kind, path, f"{mode:o}"]
            # A recursive bind of the host entry that holds the staging directory brings a
            # copy of our staging tmpfs along: drop that copy right after.
            stray = path + path if kind == "reroot" else None
            for name, entry_kind, link in entries:
                tokens += ["entry", name, entry_kind[0], link]
                if stray is not None and stray.startswith(f"{path}/{name}/"):
                    tokens += ["umount", stray]
                    stray = None
            if kind == "reroot":
                tokens += ["finish", path]
        else:
            raise ValueError(f"unknown mount op {kind!r}")
    return b"".join(t.encode() + b"\0" for t in tokens)


# -- spawn ---------------------------------------------------------------------------------------
def _open_namespaces(pid: int, names: Iterable[tuple[str, int]], what: str,
                     who: str) -> list[tuple[int, int]]:
    fds: list[tuple[int, int]] = []
    try:
        for ns, flag in names:
            fds.append((os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC), flag))
    except OSError as e:
        for fd, _ in fds:
            os.close(fd)
        if isinstance(e, FileNotFoundError):
            raise SpawnError(f"{what}: {who} (pid {pid}) is gone") from None
        raise SpawnError(f"{what}: opening namespaces of {who} (pid {pid}): {e.strerror}") \
            from None
    return fds


def security_args(iso: Isolation, uid: int | None, gid: int | None) -> list[str]:
    """tk-shim's options for what the app's process does to itself before exec."""
    args: list[str] = []
    if iso.capabilities is not None:
        args += ["-C", f"{iso.capabilities:x}"]
    if iso.seccomp:
        args.append("-Z")
    if iso.no_new_privs:
        args.append("-N")
    if iso.groups:
        args += ["-G", ",".join(str(g) for g in iso.groups)]
    if uid is not None:
        args += ["-u", str(uid)]
    if gid is not None:
        args += ["-g", str(gid)]
    return args


def _environment(env: dict[str, str]) -> dict[str, str]:
    return env if "PATH" in env else {**env, "PATH": DEFAULT_PATH}


def _spawn(sandbox: Sandbox, cgroups: CgroupDriver, pod_uid: str, name: str,
           launch: ContainerLaunch) -> ContainerProcess:
    what = f"starting container {name!r} of pod {pod_uid}"
    if not launch.argv:
        raise SpawnError(f"{what}: empty command")
    if not launch.log_path or not launch.exit_file:
        raise SpawnError(f"{what}: log_path and exit_file are required")
    os.makedirs(os.path.dirname(launch.log_path), exist_ok=True)
    os.makedirs(os.path.dirname(launch.exit_file), exist_ok=True)
    try:
        os.unlink(launch.exit_file)  # a stale code from the previous run must not be read
    except FileNotFoundError:
        pass
    staging = os.path.realpath(os.path.dirname(launch.log_path))
    iso = launch.isolation
    ops = container_plan(launch.mounts, staging, iso)
    cwd = launch.cwd or "/"

    tail = security_args(iso, launch.uid, launch.gid)
    if iso.pid_namespace is PidNamespace.CONTAINER:
        tail.append("-p")
    tail += [launch.exit_file, "--", *launch.argv]
    namespaces = [*POD_NAMESPACES, MOUNT_NAMESPACE]
    if iso.pid_namespace is PidNamespace.POD:
        namespaces.append(PID_NAMESPACE)

    pause = "the pod's pause process"
    ns_fds = _open_namespaces(sandbox.pause_pid, namespaces, what, pause)
    join_fds: list[int] = []
    log_fd = plan_fd = log_dir_fd = -1
    try:
        # After opening the ns files: if the pause is still the same process, they are its.
        if not syscalls.process_alive(sandbox.pause_pid, sandbox.start_time):
            raise SpawnError(f"{what}: {pause} (pid {sandbox.pause_pid}) is gone")
        setup, join_fds = cgroups.join_args(pod_uid, name)
        log_fd = os.open(launch.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                         0o640)
        plan_fd = os.memfd_create("tk-mount-plan")
        os.write(plan_fd, encode_plan(ops))
        setup += [arg for fd, _ in ns_fds for arg in ("-n", str(fd))]
        setup += ["-m", str(plan_fd), "-w", cwd]
        if launch.log_max_bytes > 0:
            # The shim rotates the file by name inside this directory, whatever its mounts.
            log_dir_fd = os.open(os.path.dirname(launch.log_path),
                                 os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            setup += ["-l", f"{log_dir_fd}:{os.path.basename(launch.log_path)}:"
                            f"{launch.log_max_bytes}:{launch.log_max_files}"]
        popen = shim_spawn(
            setup, tail, what, [*join_fds, *(fd for fd, _ in ns_fds), plan_fd,
                                *([log_dir_fd] if log_dir_fd >= 0 else [])],
            stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
            env=_environment(launch.env), start_new_session=True, close_fds=True)
    finally:
        for fd in [*(fd for fd, _ in ns_fds), *join_fds, log_fd, plan_fd, log_dir_fd]:
            if fd >= 0:
                os.close(fd)
    return ContainerProcess(pid=popen.pid, start_time=register_child(popen),
                            exit_file=launch.exit_file)


async def spawn_container(sandbox: Sandbox, cgroups: CgroupDriver, pod_uid: str, name: str,
                          launch: ContainerLaunch) -> ContainerProcess:
    """Start ``launch`` as container ``name`` of the pod. The container cgroup must exist
    (``cgroups.create_container``). Raises SpawnError naming the failed step."""
    return await trio.to_thread.run_sync(_spawn, sandbox, cgroups, pod_uid, name, launch)


def read_exit_file(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return None


async def wait_exit(proc: ContainerProcess) -> int:
    """Wait (pidfd, no polling) until the container's shim exits; return the app's exit code
    from the exit file, else the shim's own status if it was our child, else
    ``EXIT_CODE_UNKNOWN``. Safe to call for a process an earlier daemon started."""
    await wait_pid_exit(proc.pid, proc.start_time)
    status = reap(proc.pid, proc.start_time)
    recorded = read_exit_file(proc.exit_file) if proc.exit_file else None
    if recorded is not None:
        return recorded
    return status if status is not None else EXIT_CODE_UNKNOWN


# -- exec ----------------------------------------------------------------------------------------
async def exec_in_container(sandbox: Sandbox, proc: ContainerProcess, argv: list[str], *,
                            cgroups: CgroupDriver, pod_uid: str, name: str,
                            env: dict[str, str] | None = None, cwd: str = "/",
                            uid: int | None = None, gid: int | None = None,
                            isolation: Isolation | None = None,
                            ) -> trio.Process:
    """Run ``argv`` in the namespaces (net, uts, ipc, mnt, pid) of the container's process
    and in its cgroup, confined as the container is (``isolation``; None: not at all).
    Returns a trio Process with stdin/stdout/stderr pipes; the caller waits on it
    (``await p.wait()``) or kills it. ``sandbox`` is checked to still be the same pod."""
    what = f"exec {argv[0] if argv else ''!r} in container {name!r} of pod {pod_uid}"
    if not argv:
        raise SpawnError(f"{what}: empty command")
    if not syscalls.process_alive(sandbox.pause_pid, sandbox.start_time):
        raise SpawnError(f"{what}: the pod's pause process is gone")
    # The shim's pid_for_children is the app's PID namespace: joining it takes a fork (-F).
    ns_fds = _open_namespaces(proc.pid, (*POD_NAMESPACES, MOUNT_NAMESPACE, PID_NAMESPACE),
                              what, "the container process")
    join_fds: list[int] = []
    try:
        if not syscalls.process_alive(proc.pid, proc.start_time):
            raise SpawnError(f"{what}: the container is not running")
        setup, join_fds = cgroups.join_args(pod_uid, name)
        setup += [arg for fd, _ in ns_fds for arg in ("-n", str(fd))]
        setup += ["-w", cwd, "-F"]
        setup += security_args(isolation or Isolation.none(), uid, gid)
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            process = await trio.lowlevel.open_process(
                [shim_path(), *setup, "-s", str(write_fd), "-E", "--", *argv],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=_environment(env or {}), close_fds=True,
                pass_fds=[*join_fds, *(fd for fd, _ in ns_fds), write_fd])
        except OSError as e:
            os.close(read_fd)
            raise SpawnError(f"{what}: {e.strerror}") from None
        finally:
            os.close(write_fd)
        # The shim closes the status pipe when it execs the command, or says what failed.
        async with trio.lowlevel.FdStream(read_fd) as status:
            failure = b""
            while chunk := await status.receive_some(4096):
                failure += chunk
        if failure:
            with trio.CancelScope(shield=True):
                await process.wait()
            raise SpawnError(f"{what}: {failure.decode(errors='replace')}")
        return process
    finally:
        for fd, _ in ns_fds:
            os.close(fd)
        for fd in join_fds:
            os.close(fd)
