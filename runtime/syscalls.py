"""The one seam for Linux calls that Python 3.11's ``os`` module lacks, and /proc reading.

Python 3.11 has no ``os.setns`` or ``umount2``, so they go through libc via ctypes. Every
wrapper raises :class:`SyscallError` (an ``OSError`` carrying errno) whose message names the
call and its arguments. The set-up of pods and containers (unshare, mounts, hostname, cgroup
joins) is not here but in tk-shim (C), which runs it between vfork and exec.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)

_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]

# Namespace flags (linux/sched.h).
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000

MNT_DETACH = 2

_NS_NAMES = {CLONE_NEWNS: "CLONE_NEWNS", CLONE_NEWUTS: "CLONE_NEWUTS",
             CLONE_NEWIPC: "CLONE_NEWIPC", CLONE_NEWNET: "CLONE_NEWNET",
             CLONE_NEWPID: "CLONE_NEWPID"}


class SyscallError(OSError):
    """A failed libc call; ``errno`` is set and ``call`` names the call with its arguments."""

    def __init__(self, err: int, call: str) -> None:
        super().__init__(err, f"{call}: {os.strerror(err)}")
        self.call = call


def _check(result: int, call: str) -> None:
    if result < 0:
        raise SyscallError(ctypes.get_errno(), call)


def _flag_names(flags: int) -> str:
    names = [name for bit, name in _NS_NAMES.items() if flags & bit]
    return "|".join(names) or hex(flags)


def setns(fd: int, nstype: int = 0) -> None:
    """Join the namespace that ``fd`` (an open ``/proc/<pid>/ns/*`` file) refers to."""
    _check(_libc.setns(fd, nstype), f"setns(fd={fd}, {_flag_names(nstype)})")


MS_NOSUID = 2
MS_NODEV = 4


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    """mount(2), for the one mount the daemon makes on the host: a memory-backed emptyDir's
    tmpfs (runtime/volumes.py)."""
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode(), flags,
                       data.encode()), f"mount({source!r}, {target!r}, {fstype!r})")


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(target.encode(), flags), f"umount2({target!r}, {flags})")


def proc_start_time(pid: int) -> int:
    """Start time of ``pid`` in clock ticks since boot (field 22 of ``/proc/<pid>/stat``).

    Together with the pid it identifies one process across pid reuse.
    ``ProcessLookupError`` if there is no such process.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        raise ProcessLookupError(pid, f"no process {pid}") from None
    # The command name (field 2) is in parentheses and may hold spaces or ')': split after the
    # last ')'. The remaining fields start at field 3, so field 22 is index 19.
    fields = stat[stat.rindex(b")") + 2:].split()
    return int(fields[19])


def process_alive(pid: int, start_time: int) -> bool:
    """True if ``pid`` still runs and is the same process (same start time), not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    fields = stat[stat.rindex(b")") + 2:].split()
    return fields[0] != b"Z" and int(fields[19]) == start_time
