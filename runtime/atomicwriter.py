"""The kubelet's atomic writer: a volume's files change all at once, never half-written.

Layout inside the volume directory (as Kubernetes' pkg/volume/util/atomic_writer.go):

    ..2026_12_07_02_30_00.123456789/   the files of one version
    ..data -> ..2026_12_07_02_30_00.123456789
    key -> ..data/key                  one symlink per top-level name users see

An update writes a new version directory, points `..data_tmp` at it and renames that over
`..data` (one atomic rename), fixes the top-level symlinks, then removes the old version. A
reader that opens `key` sees either the old files or the new ones. A bind mount of one file
(`subPath`) keeps the inode it was given, so it does not follow updates (as in Kubernetes).

Only the daemon writes here (containers get the volume read-only).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

DATA = "..data"
DATA_TMP = "..data_tmp"


@dataclass(frozen=True)
class File:
    content: bytes
    mode: int


Payload = dict[str, File]  # relative path -> file


def _version_name() -> str:
    now = time.time_ns()
    stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime(now // 1_000_000_000))
    return f"..{stamp}.{now % 1_000_000_000:09d}"


def current(directory: Path) -> Payload | None:
    """(Blocking.) The payload `..data` points at now; None when nothing is written yet."""
    try:
        version = directory / os.readlink(directory / DATA)
    except OSError:
        return None
    found: Payload = {}
    for top, _dirs, files in os.walk(version):
        for name in files:
            path = Path(top) / name
            st = path.stat()
            found[str(path.relative_to(version))] = File(path.read_bytes(),
                                                         st.st_mode & 0o7777)
    return found


def write(directory: Path, payload: Payload, gid: int | None = None) -> bool:
    """(Blocking.) Make `directory` hold exactly `payload`; False when it already did.
    `gid`: the pod's fsGroup; the files and directories of a new version get that group
    (the modes in `payload` already say what the group may do)."""
    old = current(directory)
    if old == payload:
        return False
    version = directory / _version_name()
    version.mkdir(mode=0o755)
    for relative, file in sorted(payload.items()):
        target = version / relative
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, file.content)
            if gid is not None:
                os.fchown(fd, -1, gid)
            os.fchmod(fd, file.mode)
        finally:
            os.close(fd)
    if gid is not None:
        for top, dirs, _files in os.walk(version):
            for name in [".", *dirs]:
                os.chown(Path(top) / name, -1, gid)
                os.chmod(Path(top) / name, 0o2755)
    try:
        previous = os.readlink(directory / DATA)
    except OSError:
        previous = None
    tmp = directory / DATA_TMP
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(version.name, tmp)
    os.rename(tmp, directory / DATA)
    wanted = {relative.split("/", 1)[0] for relative in payload}
    for name in wanted:
        link = directory / name
        if not link.is_symlink():
            os.symlink(f"{DATA}/{name}", link)
    for entry in os.listdir(directory):
        if entry.startswith("..") or entry in wanted:
            continue
        path = directory / entry
        if path.is_symlink():
            path.unlink()
    if previous and previous != version.name and previous.startswith(".."):
        shutil.rmtree(directory / previous, ignore_errors=True)
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
