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


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    readonly: bool = False


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


@dataclass(frozen=True)
class ContainerProcess:
    """A running container: the tk-shim's pid and start time (they identify it across pid
    reuse and daemon restarts) and where the shim writes the exit code."""
    pid: int
    start_time: int
    exit_file: str = ""


# -- mount plan: computed here, executed by tk-shim before it runs the app -----------------------
# Ops are plain tuples so the child only walks a list:
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
                lexists: Callable[[str], bool] = os.path.lexists,
                isdir: Callable[[str], bool] = os.path.isdir,
                realpath: Callable[[str], str] = os.path.realpath,
                scan: Callable[[str], list[Entry]] = scan_dir,
                mode_of: Callable[[str], int] = lambda p: os.stat(p).st_mode & 0o7777,
                ) -> list[Op]:
    """The mount operations that put each mount at its target without touching the host.
    Shallow targets first, so a mount inside another mount's target lands on top of it."""
    ours: set[str] = set()  # directories on a tmpfs of ours: free to create entries in
    ops: list[Op] = []
    reroot: list[Op] = []
    for m in sorted(mounts, key=lambda m: os.path.normpath(m.target).count("/")):
        if not os.path.isabs(m.target):
            raise SpawnError(f"mount target {m.target!r} must be an absolute path")
        parts = [p for p in os.path.normpath(m.target).split("/") if p]
        if not parts:
            raise SpawnError(f"mount target {m.target!r}: cannot mount over /")
        existing, i = "/", 0
        while i < len(parts):
            nxt = os.path.join(existing, parts[i])
            if nxt in ours:
                existing = nxt
            elif lexists(nxt):
                existing = realpath(nxt)
            else:
                break
            i += 1
        missing = parts[i:]
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
        ops.append(("bind", m.source, path, m.readonly))
    return reroot + ops


def encode_plan(ops: list[Op]) -> bytes:
    """The plan as tk-shim reads it: NUL-separated tokens (see run_plan in tk-shim.c)."""
    tokens: list[str] = []
    for op in ops:
        kind = op[0]
        if kind == "bind":
            _, source, target, readonly = op
            tokens += ["bind", source, target, "1" if readonly else "0"]
        elif kind in ("mkdir", "touch"):
            tokens += [kind, op[1]]
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
    ops = plan_mounts(launch.mounts, staging)
    cwd = launch.cwd or "/"

    tail = []
    if launch.uid is not None:
        tail += ["-u", str(launch.uid)]
    if launch.gid is not None:
        tail += ["-g", str(launch.gid)]
    tail += [launch.exit_file, "--", *launch.argv]

    pause = "the pod's pause process"
    ns_fds = _open_namespaces(sandbox.pause_pid, POD_NAMESPACES, what, pause)
    join_fds: list[int] = []
    log_fd = plan_fd = -1
    try:
        # After opening the ns files: if the pause is still the same process, they are its.
        if not syscalls.process_alive(sandbox.pause_pid, sandbox.start_time):
            raise SpawnError(f"{what}: {pause} (pid {sandbox.pause_pid}) is gone")
        join_fds = cgroups.join_fds(pod_uid, name)
        log_fd = os.open(launch.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                         0o640)
        plan_fd = os.memfd_create("tk-mount-plan")
        os.write(plan_fd, encode_plan(ops))
        setup = [arg for fd in join_fds for arg in ("-c", str(fd))]
        setup += [arg for fd, _ in ns_fds for arg in ("-n", str(fd))]
        setup += ["-m", str(plan_fd), "-w", cwd]
        popen = shim_spawn(
            setup, tail, what, [*join_fds, *(fd for fd, _ in ns_fds), plan_fd],
            stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
            env=_environment(launch.env), start_new_session=True, close_fds=True)
    finally:
        for fd in [*(fd for fd, _ in ns_fds), *join_fds, log_fd, plan_fd]:
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
                            ) -> trio.Process:
    """Run ``argv`` in the namespaces (net, uts, ipc, mnt) of the container's process and in
    its cgroup. Returns a trio Process with stdin/stdout/stderr pipes; the caller waits on it
    (``await p.wait()``) or kills it. ``sandbox`` is checked to still be the same pod."""
    what = f"exec {argv[0] if argv else ''!r} in container {name!r} of pod {pod_uid}"
    if not argv:
        raise SpawnError(f"{what}: empty command")
    if not syscalls.process_alive(sandbox.pause_pid, sandbox.start_time):
        raise SpawnError(f"{what}: the pod's pause process is gone")
    ns_fds = _open_namespaces(proc.pid, (*POD_NAMESPACES, ("mnt", syscalls.CLONE_NEWNS)),
                              what, "the container process")
    join_fds: list[int] = []
    try:
        if not syscalls.process_alive(proc.pid, proc.start_time):
            raise SpawnError(f"{what}: the container is not running")
        join_fds = cgroups.join_fds(pod_uid, name)

        setup = [arg for fd in join_fds for arg in ("-c", str(fd))]
        setup += [arg for fd, _ in ns_fds for arg in ("-n", str(fd))]
        setup += ["-w", cwd]
        if uid is not None:
            setup += ["-u", str(uid)]
        if gid is not None:
            setup += ["-g", str(gid)]
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
