"""The pod sandbox: a pause process that holds the pod's net, uts and ipc namespaces.

``start_sandbox`` runs ``catatonit -P`` (0.7 MB RSS; ``sleep infinity`` if catatonit is not
installed) through ``tk-shim -E``, which first writes ``b"0"`` to the pod cgroup's pre-opened
``cgroup.procs`` files, unshares net+uts+ipc, sets the hostname and brings up ``lo`` (so the
pod's containers talk over 127.0.0.1), makes a mount namespace with the pod's ``/dev/shm``
tmpfs, then execs the pause. So the pause is in its cgroup and namespaces before it runs a
single instruction of its own, and containers later join its namespaces with ``setns`` on
``/proc/<pause>/ns/*``.

That set-up runs in the C shim, not in a Python ``preexec_fn``: without a preexec_fn,
subprocess spawns with vfork, while a preexec_fn forces a full fork() of the daemon, whose
cost grows with its memory (11 ms against 1.3 ms here). The shim reports a failed step with
its errno over a status pipe (``shim_spawn``), so the caller gets a real message.

No ``PR_SET_PDEATHSIG``: under trio the fork happens in a worker thread, and the signal would
fire when that *thread* exits. The pause runs in its own session so it survives the
daemon's death; a restarted daemon finds it again by pid + start time (``Sandbox``).

Children we fork are kept in a registry until reaped (``reap``), so that neither
``subprocess``' garbage-collection reaper nor zombies get in the way of ``wait_pid_exit``.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
from dataclasses import dataclass
from typing import Any

import trio

from . import syscalls
from .cgroups import CgroupDriver
from .shim import shim_path

PAUSE_COMMANDS = (["catatonit", "-P"], ["sleep", "infinity"])


class SpawnError(RuntimeError):
    """A process could not be started; the message says which step failed and why."""


@dataclass(frozen=True)
class Sandbox:
    uid: str
    pause_pid: int
    start_time: int


# -- children we forked: kept until reaped -------------------------------------------------
_children: dict[tuple[int, int], subprocess.Popen[bytes]] = {}


def register_child(popen: subprocess.Popen[bytes]) -> int:
    """Keep ``popen`` until ``reap``; returns the child's start time."""
    start_time = syscalls.proc_start_time(popen.pid)
    _children[(popen.pid, start_time)] = popen
    return start_time


def reap(pid: int, start_time: int) -> int | None:
    """Reap an exited child of ours and return its exit code (128+N for signal N); None if
    it is not our child (e.g. started by an earlier daemon)."""
    popen = _children.pop((pid, start_time), None)
    if popen is None:
        return None
    code = popen.wait()
    return 128 - code if code < 0 else code


def _pidfd_exited(pidfd: int) -> bool:
    """Whether the pidfd's process has exited (the kernel marks the pidfd readable)."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


async def _until_exited(pidfd: int) -> None:
    """trio's wait_readable may wake spuriously: an fd number closed while a forked child
    still held its file leaves a stale epoll registration that fires for the fd's next user
    (trio's _io_epoll notes; pidfds report EPOLLHUP once reaped, since Linux 6.9). Taking
    such a wake-up for an exit marked a running container as exited and blocked the event
    loop in Popen.wait(), so the kernel is asked again after each one."""
    while not _pidfd_exited(pidfd):
        await trio.lowlevel.wait_readable(pidfd)


def _close_pidfd(pidfd: int) -> None:
    """Close with notify_closing first, so trio drops its epoll registration of the fd
    (EPOLL_CTL_DEL) rather than leave it stale for the number's next owner."""
    trio.lowlevel.notify_closing(pidfd)
    os.close(pidfd)


async def wait_pid_exit(pid: int, start_time: int) -> None:
    """Return once the process (pid, start_time) has exited, without polling (pidfd)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        # Checked after pidfd_open: the pidfd pins this pid, so a match means it is ours.
        if syscalls.proc_start_time(pid) == start_time:
            await _until_exited(pidfd)
    except ProcessLookupError:
        pass
    finally:
        _close_pidfd(pidfd)


def shim_spawn(setup: list[str], tail: list[str], what: str, pass_fds: list[int],
               **kwargs: Any) -> subprocess.Popen[bytes]:
    """Run ``tk-shim SETUP... TAIL`` (TAIL: ``EXIT_FILE -- argv`` or ``-E -- argv``) and wait
    only until its set-up is done: it closes the status pipe on success, or writes the failed
    step there and exits. Raises SpawnError with that message."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        argv = [shim_path(), *setup, "-s", str(write_fd), *tail]
        try:
            popen = subprocess.Popen(argv, pass_fds=[*pass_fds, write_fd], **kwargs)
        except OSError as e:
            raise SpawnError(f"{what}: exec {argv[0]}: {e.strerror}") from None
        os.close(write_fd)
        write_fd = -1
        chunks = []
        while chunk := os.read(read_fd, 4096):
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    if chunks:
        popen.wait()
        raise SpawnError(f"{what}: {b''.join(chunks).decode(errors='replace')}")
    return popen


def pause_command() -> list[str]:
    for command in PAUSE_COMMANDS:
        path = shutil.which(command[0])
        if path:
            return [path, *command[1:]]
    raise SpawnError("no pause program: install catatonit (or coreutils' sleep)")


@dataclass(frozen=True)
class SandboxOptions:
    """The pod-level namespace choices (Kubernetes' hostNetwork, hostIPC, shareProcessNamespace;
    hostPID needs nothing of the pause)."""
    host_network: bool = False
    host_ipc: bool = False
    share_pid: bool = False


# The pause's own mount namespace holds the pod's /dev/shm (a tmpfs every container's mount
# namespace, copied from this one, shares); host mounts keep propagating into it.
PAUSE_MOUNT_PLAN = (("rslave",), ("tmpfs", "/dev/shm", "mode=1777,size=65536k"))


def _encode(ops: tuple[tuple[str, ...], ...]) -> bytes:
    return b"".join(token.encode() + b"\0" for op in ops for token in op)


def start_sandbox_sync(uid: str, hostname: str, cgroups: CgroupDriver,
                       options: SandboxOptions = SandboxOptions()) -> Sandbox:
    """`start_sandbox` for callers already on a worker thread (blocking)."""
    argv = pause_command()
    setup, join_fds = cgroups.join_args(uid)
    flags = 0
    if not options.host_network:  # hostNetwork: the host's network and hostname
        flags |= syscalls.CLONE_NEWNET | syscalls.CLONE_NEWUTS
    if not options.host_ipc:
        flags |= syscalls.CLONE_NEWIPC
    if flags:
        setup += ["-U", str(flags)]
    if not options.host_network:
        setup += ["-H", hostname, "-L"]
    plan_fd = -1
    if not options.host_ipc:
        plan_fd = os.memfd_create("tk-pause-plan")
        os.write(plan_fd, _encode(PAUSE_MOUNT_PLAN))
        setup += ["-m", str(plan_fd)]
    if options.share_pid:
        # catatonit becomes PID 1 of the pod's namespace (reaping zombies); the shim stays
        # its parent outside, so the pause pid we record is the shim's, and killing it
        # (PR_SET_PDEATHSIG) ends the namespace.
        setup += ["-p", "-F"]
    try:
        popen = shim_spawn(
            setup, ["-E", "--", *argv], f"starting the pause process of pod {uid}",
            [*join_fds, *([plan_fd] if plan_fd >= 0 else [])],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True, cwd="/")
    finally:
        for fd in [*join_fds, plan_fd]:
            if fd >= 0:
                os.close(fd)
    return Sandbox(uid=uid, pause_pid=popen.pid, start_time=register_child(popen))


async def start_sandbox(uid: str, hostname: str, cgroups: CgroupDriver,
                        options: SandboxOptions = SandboxOptions()) -> Sandbox:
    """Start the pause process in new net+uts+ipc+mount namespaces (fewer with hostNetwork /
    hostIPC; a PID namespace of its own with shareProcessNamespace), in the pod cgroup
    (which the caller created: the pod worker records each step before the next)."""
    return await trio.to_thread.run_sync(start_sandbox_sync, uid, hostname, cgroups, options)


def sandbox_alive(sandbox: Sandbox) -> bool:
    return syscalls.process_alive(sandbox.pause_pid, sandbox.start_time)


async def stop_sandbox(sandbox: Sandbox) -> None:
    """Kill the pause process (if it is still the one we started) and wait until it is gone.
    Idempotent. The namespaces disappear with the last process in them."""
    pid, start_time = sandbox.pause_pid, sandbox.start_time
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        reap(pid, start_time)
        return
    try:
        if syscalls.proc_start_time(pid) == start_time:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            await _until_exited(pidfd)
    except ProcessLookupError:
        pass
    finally:
        _close_pidfd(pidfd)
    reap(pid, start_time)


@dataclass(frozen=True)
class LiveSandbox:
    """A pod's sandbox once it is whole: the pause, an fd on its network namespace (probes
    open their sockets in it) and the pod's addresses. A pod worker holds one of these or
    none; it is built in one step after the network is attached, and released in one step."""

    pause: Sandbox
    netns_fd: int
    pod_ip: str
    host_ip: str
