"""runtime/logfiles.py on real files: the chain of a rotated log, tail across rotations,
streaming without reading whole files, following through a rotation."""

from __future__ import annotations

import os
from pathlib import Path

import trio

from tinykube.runtime import logfiles


def numbered(first: int, last: int) -> bytes:
    return b"".join(b"%d\n" % n for n in range(first, last + 1))


def rotated_log(directory: Path) -> Path:
    """0.log.2 = 1..1000, 0.log.1 = 1001..2000, 0.log = 2001..2500."""
    (directory / "0.log.2").write_bytes(numbered(1, 1000))
    (directory / "0.log.1").write_bytes(numbered(1001, 2000))
    (directory / "0.log").write_bytes(numbered(2001, 2500))
    (directory / "1.log").write_bytes(b"another run\n")
    (directory / "0.log.tmp").write_bytes(b"not ours\n")
    return directory / "0.log"


def test_chain_is_oldest_first_and_only_this_runs_files(tmp_path):
    current = rotated_log(tmp_path)
    assert [p.name for p in logfiles.chain(current)] == ["0.log.2", "0.log.1", "0.log"]


def test_tail_crosses_rotations(tmp_path):
    current = rotated_log(tmp_path)
    assert logfiles.tail_lines(current, 3) == numbered(2498, 2500)
    assert logfiles.tail_lines(current, 600) == numbered(1901, 2500)
    assert logfiles.tail_lines(current, 10**6) == numbered(1, 2500)
    assert logfiles.tail_lines(current, 0) == b""


def test_tail_of_a_last_line_without_newline(tmp_path):
    (tmp_path / "0.log").write_bytes(b"a\nb\nc")
    assert logfiles.tail_lines(tmp_path / "0.log", 2) == b"b\nc"


def test_tail_reads_only_the_end_of_a_big_file(tmp_path, monkeypatch):
    big = tmp_path / "0.log"
    with open(big, "wb") as f:
        f.truncate(1 << 30)  # 1 GiB, sparse
        f.seek(0, os.SEEK_END)
        f.write(b"x\nlast\n")
    reads = []
    real_pread = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, off: reads.append(n) or real_pread(fd, n, off))
    assert logfiles.tail_lines(big, 1) == b"last\n"
    assert sum(reads) <= logfiles.CHUNK


async def test_stream_sends_everything_in_chunks(tmp_path):
    current = rotated_log(tmp_path)
    chunks: list[bytes] = []

    async def send(data: bytes) -> None:
        assert len(data) <= logfiles.CHUNK
        chunks.append(data)

    await logfiles.stream(send, current, tail=None, follow=False, latest=lambda: current)
    assert b"".join(chunks) == numbered(1, 2500)


async def test_follow_goes_on_through_a_rotation(tmp_path):
    current = tmp_path / "0.log"
    current.write_bytes(numbered(1, 10))
    got = bytearray()
    done = trio.Event()

    async def send(data: bytes) -> None:
        got.extend(data)
        if got.endswith(b"30\n"):
            done.set()

    def append_then_rotate() -> None:
        with open(current, "ab") as f:
            f.write(numbered(11, 20))
        os.rename(current, tmp_path / "0.log.1")  # what tk-shim does at the size limit
        current.write_bytes(numbered(21, 30))

    async def writer() -> None:
        await trio.sleep(0.3)
        append_then_rotate()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)

            async def follow() -> None:
                await logfiles.stream(send, current, tail=2, follow=True,
                                      latest=lambda: current)
            nursery.start_soon(follow)
            await done.wait()
            nursery.cancel_scope.cancel()
    assert bytes(got) == numbered(9, 30)


async def test_follow_finds_its_successor_after_two_rotations(tmp_path):
    """Two rotations while the follower was busy: the file after ours is now `.1`, not the
    current one (jumping to the current file lost a whole file of lines)."""
    current = tmp_path / "0.log"
    current.write_bytes(numbered(1, 10))
    got = bytearray()
    done = trio.Event()

    async def send(data: bytes) -> None:
        got.extend(data)
        if got.endswith(b"40\n"):
            done.set()

    def rotate_twice() -> None:
        with open(current, "ab") as f:
            f.write(numbered(11, 20))
        os.rename(current, tmp_path / "0.log.1")
        current.write_bytes(numbered(21, 30))
        os.rename(tmp_path / "0.log.1", tmp_path / "0.log.2")
        os.rename(current, tmp_path / "0.log.1")
        current.write_bytes(numbered(31, 40))

    async def writer() -> None:
        await trio.sleep(0.3)
        rotate_twice()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)

            async def follow() -> None:
                await logfiles.stream(send, current, tail=None, follow=True,
                                      latest=lambda: current)
            nursery.start_soon(follow)
            await done.wait()
            nursery.cancel_scope.cancel()
    assert bytes(got) == numbered(1, 40)
