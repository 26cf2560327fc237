"""Reading a container's log: across rotations, from the end, and following it.

tk-shim writes a container's output to `<n>.log` in `<root>/pods/<uid>/logs/<container>/`
(n = the restart count) and rotates it at the daemon's `--container-log-max-size` into
`<n>.log.1` … `<n>.log.<max-files - 1>` (oldest dropped), as the kubelet does with
containerLogMaxSize x containerLogMaxFiles (10 MiB x 5 by default). So one run's log is the
chain `<n>.log.<k>` … `<n>.log.1`, `<n>.log`, oldest first.

Every read happens in a worker thread in bounded chunks: `logs` of a 200 MB log never holds
it in memory, `--tail N` reads backwards from the end only as far as N lines need, and
`-f` keeps the file open and notices a rotation (the name now points at a new file) or a
restart (a new `<n>.log`), finishing the old file before moving on.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

CHUNK = 64 * 1024
FOLLOW_INTERVAL = 0.2  # seconds between polls of a followed log (a stat per follower)
DEFAULT_MAX_BYTES = 10 * 1024 * 1024  # kubelet's containerLogMaxSize
DEFAULT_MAX_FILES = 5  # kubelet's containerLogMaxFiles (the current file included)

_ROTATED = re.compile(r"^(?P<base>.+\.log)\.(?P<k>\d+)$")
_RUN = re.compile(r"^(?P<run>\d+)\.log(\.\d+)?$")

Send = Callable[[bytes], Awaitable[None]]


def chain(current: Path) -> list[Path]:
    """The files of one run's log, oldest first (rotated ones, then `current`)."""
    rotated = []
    try:
        for entry in os.scandir(current.parent):
            match = _ROTATED.match(entry.name)
            if match and match.group("base") == current.name:
                rotated.append((int(match.group("k")), current.parent / entry.name))
    except FileNotFoundError:
        return []
    files = [path for _, path in sorted(rotated, reverse=True)]
    return files + ([current] if current.exists() else [])


def whole_size(fd: int) -> int:
    """(Blocking.) The file's size at a boundary between tk-shim's writes: the kernel grows a
    file page by page during one write, so the size is taken under a shared flock (tk-shim
    writes under an exclusive one) and what lies below it is whole lines."""
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        return os.fstat(fd).st_size
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def tail_lines(current: Path, count: int) -> bytes:
    """(Blocking.) The last `count` lines of the run's log, reading backwards from the end
    of the newest file into older ones only as far as needed."""
    if count <= 0:
        return b""
    pieces: list[bytes] = []
    newlines = 0
    for path in reversed(chain(current)):
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            continue
        with f:
            position = whole_size(f.fileno())
            while position > 0:
                size = min(CHUNK, position)
                position -= size
                block = os.pread(f.fileno(), size, position)
                pieces.append(block)
                newlines += block.count(b"\n")
                # count+1 newlines: the earliest wanted line is complete (a final line without
                # a newline counts as a line too, hence the one extra).
                if newlines > count:
                    return _last_lines(b"".join(reversed(pieces)), count)
    return _last_lines(b"".join(reversed(pieces)), count)


def _last_lines(data: bytes, count: int) -> bytes:
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-count:])


class _Reader:
    """An open file of a log chain read in chunks from a position (blocking calls; run them
    in a thread). `base` is the chain's current name (`<n>.log`)."""

    def __init__(self, path: Path, base: Path | None = None) -> None:
        self.base = base or path
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.position = 0

    def read(self) -> bytes:
        size = min(CHUNK, whole_size(self.fd) - self.position)
        if size <= 0:
            return b""
        data = os.pread(self.fd, size, self.position)
        self.position += len(data)
        return data

    def replaced(self) -> bool:
        """The current name points at another file (ours was rotated) or at none."""
        try:
            return os.stat(self.base).st_ino != os.fstat(self.fd).st_ino
        except FileNotFoundError:
            return True

    def successor(self) -> Path | None:
        """The file written after ours. Ours may have been rotated more than once while we
        read it, so it is found by inode in the chain, not assumed to be `<n>.log.1`."""
        files = chain(self.base)
        ours = os.fstat(self.fd).st_ino
        for i, path in enumerate(files):
            try:
                if os.stat(path).st_ino == ours:
                    return files[i + 1] if i + 1 < len(files) else None
            except FileNotFoundError:
                continue
        # Rotated out of the chain altogether (a reader slower than the writer): go on from
        # the oldest file still kept.
        return files[0] if files else None

    def close(self) -> None:
        os.close(self.fd)


async def _drain(reader: _Reader, send: Send) -> None:
    while data := await trio.to_thread.run_sync(reader.read):
        await send(data)


async def stream(send: Send, current: Path, *, tail: int | None, follow: bool,
                 latest: Callable[[], Path | None]) -> None:
    """Send the run's log (all of it, or its last `tail` lines), then, with `follow`, what
    is written next, until `latest()` (the container's current log file) returns None."""
    reader: _Reader | None = None
    try:
        if tail is not None:
            data = await trio.to_thread.run_sync(tail_lines, current, tail)
            if data:
                await send(data)
            if follow:
                reader = await trio.to_thread.run_sync(_open_at_end, current)
        else:
            files = await trio.to_thread.run_sync(chain, current)
            for path in files:
                try:
                    reader = await trio.to_thread.run_sync(_Reader, path)
                except FileNotFoundError:
                    continue  # rotated away meanwhile; its successor is next in the chain
                await _drain(reader, send)
                if path != files[-1] or not follow:
                    reader.close()
                    reader = None
        if not follow:
            return
        path = current
        while True:
            if reader is not None:
                await _drain(reader, send)
                if await trio.to_thread.run_sync(reader.replaced):
                    await _drain(reader, send)  # what was written before the rotation
                    following = await trio.to_thread.run_sync(reader.successor)
                    if following is None and not await trio.to_thread.run_sync(path.exists):
                        await trio.sleep(0.01)  # between tk-shim's rename and its new file
                        continue
                    reader.close()
                    reader = await trio.to_thread.run_sync(_open_or_none, following or path,
                                                           path)
                    continue
            await trio.sleep(FOLLOW_INTERVAL)
            now = latest()
            if now is None:
                return  # the pod is gone
            if now != path and now.exists():
                if reader is not None:
                    await _drain(reader, send)
                    reader.close()
                path = now  # the container restarted: follow its new log from the start
                reader = await trio.to_thread.run_sync(_open_or_none, path)
            elif reader is None:
                reader = await trio.to_thread.run_sync(_open_or_none, path)
    finally:
        if reader is not None:
            reader.close()


def _open_or_none(path: Path, base: Path | None = None) -> _Reader | None:
    try:
        return _Reader(path, base)
    except FileNotFoundError:
        return None


def _open_at_end(path: Path) -> _Reader | None:
    reader = _open_or_none(path)
    if reader is not None:
        reader.position = whole_size(reader.fd)
    return reader


def prune_runs(directory: Path, keep_from: int) -> None:
    """(Blocking.) Remove the log files of runs numbered below `keep_from`."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return
    for entry in entries:
        match = _RUN.match(entry.name)
        if match and int(match.group("run")) < keep_from:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass
