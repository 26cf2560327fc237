"""The pod record: what a pod worker has started, written before it is started.

One JSON file per pod (`layout.record_path`). It outlives the daemon (the runtime dir
is a tmpfs that survives a daemon restart but not a reboot, exactly as the processes do), so
a restarted daemon can find the pause and containers again, check they are the same
processes (pid + start time from /proc, guarding against pid reuse) and read the exit codes
the shims wrote. Writes are atomic (temp file + rename) so a crash mid-write leaves the old
record, never half of a new one. Record first, then act: the record names the pod's uid, and
every host resource is derived from the uid, so teardown can always find what to remove.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import layout


@dataclass
class ProcessRecord:
    pid: int
    start_time: int


@dataclass
class ContainerRecord:
    name: str
    restart_count: int = 0
    process: ProcessRecord | None = None
    exit_file: str | None = None
    started_at: str | None = None
    exit_code: int | None = None  # of the last run, once it exited


@dataclass
class PodRecord:
    uid: str
    namespace: str
    name: str
    pause: ProcessRecord | None = None
    containers: dict[str, ContainerRecord] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PodRecord:
        pause = data.get("pause")
        containers = {}
        for name, c in (data.get("containers") or {}).items():
            proc = c.get("process")
            containers[name] = ContainerRecord(
                name=name, restart_count=int(c.get("restart_count", 0)),
                process=ProcessRecord(**proc) if proc else None,
                exit_file=c.get("exit_file"), started_at=c.get("started_at"),
                exit_code=c.get("exit_code"))
        return cls(uid=data["uid"], namespace=data["namespace"], name=data["name"],
                   pause=ProcessRecord(**pause) if pause else None, containers=containers)


def write_record(run_dir: Path, record: PodRecord) -> None:
    """Atomically replace the record (a reader sees the old or the new one, never a mix)."""
    write_encoded(run_dir, record.uid, encode(record))


def encode(record: PodRecord) -> bytes:
    """The record as written: a snapshot, so the write itself may happen on another thread."""
    return json.dumps(record.to_json(), separators=(",", ":")).encode()


def write_encoded(run_dir: Path, uid: str, data: bytes) -> None:
    """Atomically replace the record of `uid` with `data` (from `encode`); blocking."""
    path = layout.record_path(run_dir, uid)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def rewrite_encoded(run_dir: Path, uid: str, data: bytes) -> None:
    """`write_encoded` if the record of `uid` exists (a pod without one keeps none)."""
    if layout.record_path(run_dir, uid).exists():
        write_encoded(run_dir, uid, data)


def read_record(run_dir: Path, uid: str) -> PodRecord | None:
    try:
        data = json.loads(layout.record_path(run_dir, uid).read_text())
    except FileNotFoundError:
        return None
    return PodRecord.from_json(data)


def list_records(run_dir: Path) -> list[PodRecord]:
    """Every readable record; an unreadable one is skipped (its uid still names its cgroups)."""
    records: list[PodRecord] = []
    directory = layout.records_dir(run_dir)
    if not directory.is_dir():
        return records
    for path in sorted(directory.glob("*.json")):
        try:
            records.append(PodRecord.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return records


def remove_record(run_dir: Path, uid: str) -> None:
    """Idempotent."""
    record = layout.record_path(run_dir, uid)
    for path in (record, record.with_suffix(".json.tmp")):
        try:
            path.unlink()
        except FileNotFoundError:
            pass
