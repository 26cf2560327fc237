"""runtime/storemark.py: a pod worker's cover(v) returns only once the mark on disk is at
least v, and workers that ask together share one write (group commit)."""

from __future__ import annotations

import trio

from tinykube.runtime import storemark
from tinykube.runtime.storeguard import read_mark


async def test_each_cover_waits_for_a_mark_at_least_its_version(tmp_path, monkeypatch):
    store_version = {"now": 10}
    writes: list[int] = []
    real_write = storemark.write_mark

    def slow_write(run_dir, root, version):
        writes.append(version)
        real_write(run_dir, root, version)

    monkeypatch.setattr(storemark, "write_mark", slow_write)
    mark = storemark.StoreMark(tmp_path, tmp_path / "root", lambda: store_version["now"])
    mark.write_now()
    await mark.cover(10)  # already on disk: no write
    assert writes == [10]

    seen: list[tuple[int, int]] = []

    async def worker(version: int) -> None:
        await mark.cover(version)
        seen.append((version, read_mark(tmp_path)))

    async with trio.open_nursery() as nursery:
        for version in range(11, 41):
            store_version["now"] = version  # the store moves on as each pod arrives
            nursery.start_soon(worker, version)
    assert len(seen) == 30
    assert all(on_disk >= version for version, on_disk in seen)
    assert len(writes) - 1 < 30  # some workers were covered by another's write
    assert read_mark(tmp_path) == 40
