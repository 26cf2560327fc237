"""The one ctypes seam of netns/: `setns(2)` (Python 3.11 has no `os.setns`).

setns on a network namespace changes only the calling thread, which is what lets one
throwaway thread step into a pod's netns while the rest of the daemon stays on the host's.
runtime/ keeps its own syscall seam; this copy keeps netns/ free of imports from runtime/.
"""

import ctypes
import os

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)
_libc.setns.restype = ctypes.c_int


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    """Move the calling thread into the namespace open at `fd`; OSError with errno on failure."""
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns(fd={fd}, nstype={nstype:#x}): {os.strerror(err)}")
