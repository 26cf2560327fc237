"""Path operations inside directories the daemon owns, never following a planted symlink.

The daemon runs as root, and containers can write into some of its directories (emptyDir
and claim volumes). A container that leaves `data/sub -> /etc` must not make the next
`subPath: sub` bind the host's /etc, nor make a clean-up delete or a rewrite overwrite a host
file. So every path below a base is resolved one component at a time with
`openat(O_NOFOLLOW)` (the portable form of openat2's RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS):
a symlink or a `..` anywhere below the base is an error, not something to follow.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path, PurePosixPath

from .layout import component


class UnsafePath(OSError):
    """A path below a base that crosses a symlink, escapes with `..`, or is not a directory
    where one is needed."""


_DIR_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


def _components(relative: str) -> list[str]:
    path = PurePosixPath(relative)
    if path.is_absolute():
        raise UnsafePath(errno.EINVAL, f"{relative!r} must be a relative path")
    parts = [p for p in path.parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePath(errno.EINVAL, f"{relative!r} must not contain '..'")
    return parts


def resolve_beneath(base: Path, relative: str, *, create: str | None = None) -> Path:
    """`base/relative`, checked to contain no symlink below `base` (the base itself is the
    daemon's, created by it). `create`: None, "dir" (create missing directories) or "file"
    (missing parents as directories, the last one as an empty file). Raises UnsafePath."""
    parts = _components(relative)
    fd = os.open(base, _DIR_FLAGS)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if create and not (last and create == "file"):
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            elif create == "file":
                try:
                    os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW
                                     | os.O_CLOEXEC, 0o644, dir_fd=fd))
                except OSError as e:
                    if e.errno != errno.ELOOP:
                        raise
            flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                child = os.open(part, flags if last else _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePath(errno.ELOOP, f"{base / relative}: {part!r} is a symlink "
                                     "or not a directory; refusing to follow it") from None
                raise
            os.close(fd)
            fd = child
            if last and stat.S_ISLNK(os.fstat(fd).st_mode):
                raise UnsafePath(errno.ELOOP,
                                 f"{base / relative}: {part!r} is a symlink; refusing to follow it")
    finally:
        os.close(fd)
    return Path(base, *parts)


def remove_tree(parent: Path, name: str) -> None:
    """Remove `parent/name` (a directory tree, a file or a symlink) without following any
    symlink in it: a symlink is unlinked, never its target. Missing is fine."""
    component(name, "path", lambda message: UnsafePath(errno.EINVAL, message))
    fd = os.open(parent, _DIR_FLAGS)
    try:
        try:
            st = os.lstat(name, dir_fd=fd)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=fd)
            return
    finally:
        os.close(fd)
    # The fd-based rmtree (shutil.rmtree's default on Linux) opens every directory with
    # O_NOFOLLOW and unlinks symlinks it meets: it never leaves the tree.
    assert shutil.rmtree.avoids_symlink_attacks
    shutil.rmtree(Path(parent) / name)


def write_in_place(path: Path, data: bytes) -> bool:
    """Rewrite the file `path` keeping its inode (bind mounts of the file follow it), refusing
    a symlink in its place. False if it already holds `data`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        fd = -1
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafePath(errno.ELOOP, f"{path} is a symlink; refusing to write through it"
                             ) from None
        raise
    if fd >= 0:
        try:
            if os.read(fd, len(data) + 1) == data:
                return False
        finally:
            os.close(fd)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafePath(errno.ELOOP, f"{path} is a symlink; refusing to write through it"
                             ) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePath(errno.EINVAL, f"{path} is not a regular file")
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)
    return True
