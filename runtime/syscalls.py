"""The one seam for Linux calls that Python 3.11's ``os`` module lacks.

Python 3.11 has no ``os.setns``/``os.unshare``/``mount``, so they go through libc via ctypes.
Every wrapper raises :class:`SyscallError` (an ``OSError`` carrying errno) whose message names
the call and its arguments, e.g. ``mount('/src', '/data', MS_BIND): [Errno 2] No such file``.

The wrappers are safe to call in a ``preexec_fn`` (between fork and exec): they only touch
ctypes objects bound at import time and ``os`` functions, and import nothing.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)

_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.mount.argtypes = [
    ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.syscall.restype = ctypes.c_long
_libc.socket.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]

# Namespace flags (linux/sched.h).
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000

# Mount flags (linux/mount.h).
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19

MNT_DETACH = 2

_SYS_PIVOT_ROOT = 155  # x86_64; aarch64 is 41
if os.uname().machine == "aarch64":
    _SYS_PIVOT_ROOT = 41

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


def _b(path: str | bytes | None) -> bytes | None:
    if path is None or isinstance(path, bytes):
        return path
    return path.encode()


def setns(fd: int, nstype: int = 0) -> None:
    """Join the namespace that ``fd`` (an open ``/proc/<pid>/ns/*`` file) refers to."""
    _check(_libc.setns(fd, nstype), f"setns(fd={fd}, {_flag_names(nstype)})")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), f"unshare({_flag_names(flags)})")


def mount(source: str | bytes | None, target: str | bytes, fstype: str | bytes | None = None,
          flags: int = 0, data: str | bytes | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
           f"mount({source!r}, {target!r}, {fstype!r}, flags={flags:#x})")


def umount2(target: str | bytes, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount2({target!r}, {flags})")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), f"sethostname({name!r})")


def pivot_root(new_root: str | bytes, put_old: str | bytes) -> None:
    _check(_libc.syscall(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old)),
           f"pivot_root({new_root!r}, {put_old!r})")


_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ_SIZE = 40  # struct ifreq: 16-byte name, then a union whose first short is the flags
_LOOPBACK_REQ = ctypes.create_string_buffer(b"lo", _IFREQ_SIZE)  # built now, not after fork


def loopback_up() -> None:
    """Bring up ``lo`` of the current network namespace (a new netns starts with it down), so
    the pod's containers can talk over 127.0.0.1. Two ioctls: safe between fork and exec."""
    fd = _libc.socket(2, 2 | 0o2000000, 0)  # AF_INET, SOCK_DGRAM | SOCK_CLOEXEC
    _check(fd, "socket(AF_INET, SOCK_DGRAM)")
    try:
        req = _LOOPBACK_REQ
        _check(_libc.ioctl(fd, _SIOCGIFFLAGS, req), "ioctl(lo, SIOCGIFFLAGS)")
        flags = int.from_bytes(req.raw[16:18], "little") | _IFF_UP
        ctypes.memmove(ctypes.addressof(req) + 16, flags.to_bytes(2, "little"), 2)
        _check(_libc.ioctl(fd, _SIOCSIFFLAGS, req), "ioctl(lo, SIOCSIFFLAGS, IFF_UP)")
    finally:
        os.close(fd)


def pidfd_open(pid: int) -> int:
    """A pidfd for ``pid``; ``ProcessLookupError`` if it is gone."""
    return os.pidfd_open(pid)


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
