"""The embedded store (the default backend): SQLite for durability, the cache and watch of
`base.Store` for reads.

Every object lives in one SQLite table keyed by (kind, namespace, name). The whole table is
loaded into memory at start, so reads never touch the disk; each write is one SQLite
transaction committed *before* the caller gets an answer (WAL mode: a process crash after
an acknowledged write loses nothing). Writes that come from users (the API server passes
``durable=True``) also fsync, so not even a power cut loses them; the runtime's frequent status
writes skip the fsync since the runtime re-derives status from the processes anyway.

resourceVersion is one global, monotonic counter kept in the same transaction as the object,
as etcd's revision is for Kubernetes. Watchers get every change after a given resourceVersion
from a bounded in-memory history; a watcher asking for older history gets ``Gone`` and must
re-list, exactly as a Kubernetes client does after a 410.

Writes are group-committed (`groupcommit.py`): concurrent writes share one transaction and
its fsync, run in a worker thread while the trio thread goes on serving; a write that needs
no fsync and finds nothing in flight commits at once on the trio thread. resourceVersions are
handed out in arrival order and applied in that order, so watchers see them monotonic.

Start-up survives any row: one that cannot be served (`model.integrity`) is logged with its
key, skipped and kept untouched in `unloadable` until `tinykube doctor --repair` sets it aside.

A full disk: SQLite needs free pages even to delete. The store keeps a reserve file
(`RESERVE_BYTES`, allocated at start) beside `state.db`; a write that removes an object and
fails for lack of space releases the reserve and is retried, so deleting what filled the disk
always works. Every other write fails with `InsufficientStorage` (507, "no space left on
device"); SQLite's transaction keeps the store intact either way. The reserve is taken back
once space is free again.
"""

from __future__ import annotations

import builtins
import errno
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from .base import DELETED, Key, StaleCache, Store, clone
from .groupcommit import GroupCommit, PendingWrite, Statement

from tinykube.model import integrity
from tinykube.model.errors import InsufficientStorage, NotFound

log = logging.getLogger("tinykube.store")

RESERVE_BYTES = 8 * 1024 * 1024  # released so that deletes work on a full disk
RESERVE_RETRY_SECONDS = 10.0
SQLITE_FULL = 13


class SqliteStore(Store):
    def __init__(self, db_path: Path) -> None:
        super().__init__()
        self.path = db_path
        db_path.parent.mkdir(parents=True, exist_ok=True)
        # Secrets live in here: root only, as etcd's data directory (SQLite gives its -wal
        # and -shm files the database file's mode).
        for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
            if path == db_path or path.exists():
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
                os.chmod(path, 0o600)
        self._db = sqlite3.connect(str(db_path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS objects (kind TEXT, namespace TEXT, name TEXT,"
            " rv INTEGER, data TEXT, PRIMARY KEY (kind, namespace, name))"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER)")
        row = self._db.execute("SELECT value FROM meta WHERE key='rv'").fetchone()
        self._rv = row[0] if row else 0
        self._last_rv = self._rv  # the last resourceVersion handed out
        self._history_floor = self._rv
        # The connection is used by the trio thread and by group commits in worker threads:
        # one transaction at a time.
        self._db_lock = threading.Lock()
        self._group = GroupCommit(self._commit_batch)
        self._load()
        self.reserve = DiskReserve(db_path.parent / "state.reserve", RESERVE_BYTES)
        self.reserve.ensure()

    def _load(self) -> None:
        self._db.text_factory = bytes  # a row that is not UTF-8 must not fail the whole load
        try:
            rows = self._db.execute("SELECT kind, namespace, name, data FROM objects").fetchall()
        finally:
            self._db.text_factory = str
        for kind_b, namespace_b, name_b, data in rows:
            key = (_text(kind_b), _text(namespace_b), _text(name_b))
            obj, why = integrity.load_problems(*key, data)
            if obj is None:
                self.unloadable[key] = why
                log.error("stored object %s cannot be loaded and is skipped: %s "
                          "(see `tinykube doctor`)", "/".join(key), why)
                continue
            self._objects[key] = obj

    def set_aside(self, key: Key, backup_dir: Path | None = None) -> Path:
        """Move an unloadable row out of the store into a backup file (`tinykube doctor
        --repair`); returns the file. The file is written and synced before the row goes."""
        backup_dir = backup_dir or self.path.parent / "doctor-backup"
        if key not in self.unloadable:
            raise NotFound(f"no unloadable object is stored as {'/'.join(key)}")
        with self._db_lock:
            self._db.text_factory = bytes
            try:
                row = self._db.execute(
                    "SELECT rv, data FROM objects WHERE kind=? AND namespace=? AND name=?",
                    key).fetchone()
            finally:
                self._db.text_factory = str
        backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        safe = "_".join("".join(c if c.isalnum() or c in "-." else "_" for c in part)[:80]
                        for part in key)
        path = backup_dir / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}-{safe}.json"
        record = {"kind": key[0], "namespace": key[1], "name": key[2],
                  "reason": self.unloadable[key],
                  "rv": row[0] if row else None,
                  "data": _text(row[1]) if row and row[1] is not None else None}
        with open(path, "x") as f:
            json.dump(record, f)
            f.flush()
            os.fsync(f.fileno())
        with self._db_lock:
            self._write_sql(True, [
                ("DELETE FROM objects WHERE kind=? AND namespace=? AND name=?", key),
            ], self._rv, removal=True)
        del self.unloadable[key]
        log.warning("stored object %s set aside to %s", "/".join(key), path)
        return path

    def close(self) -> None:
        super().close()
        self._db.close()

    # ---- the write path ----------------------------------------------------------------

    def _next_rv(self) -> int:
        self._last_rv = max(self._last_rv, self._rv) + 1
        return self._last_rv

    async def _commit(self, type: str, key: Key, obj: dict, durable: bool) -> dict:
        self._check_identity(obj, key)
        await self._settled(key)
        rv = self._next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        data = json.dumps(obj, separators=(",", ":"))
        await self._write(key, rv, [
            ("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?)", (*key, rv, data)),
        ], durable, lambda: self._apply(type, key, obj, rv, data))
        return clone(obj)

    async def _remove(self, key: Key, obj: dict, durable: bool) -> dict:
        await self._settled(key)
        rv = self._next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        await self._write(key, rv, [
            ("DELETE FROM objects WHERE kind=? AND namespace=? AND name=?", key),
        ], durable, lambda: self._apply(DELETED, key, obj, rv,
                                        json.dumps(obj, separators=(",", ":"))),
            removal=True)
        return clone(obj)

    async def _settled(self, key: Key) -> None:
        """Returns at once (no checkpoint: the caller's decision stays current) unless a
        write to `key` is in flight; then waits for it and has the rules run again."""
        in_flight = self._group.in_flight(key)
        if in_flight is not None:
            await in_flight.wait()
            raise StaleCache

    async def _write(self, key: Key, rv: int, statements: builtins.list[Statement],
                     durable: bool, apply: Callable[[], None], *, removal: bool = False
                     ) -> None:
        if not durable and self._group.idle:
            # No fsync to share and nothing ahead of it: commit here and now, no thread hop.
            with self._db_lock:
                self._write_sql(durable, statements, rv, removal=removal)
            apply()
            return
        await self._group.write(PendingWrite(key, rv, statements, durable, removal, apply))

    def _commit_batch(self, batch: builtins.list[PendingWrite]
                      ) -> builtins.list[BaseException | None]:
        """In a worker thread: the batch as one transaction, else each write alone (so a
        write that cannot be stored fails by itself)."""
        with self._db_lock:
            if len(batch) > 1:
                statements = [s for pending in batch for s in pending.statements]
                try:
                    self._transaction(any(p.durable for p in batch), statements, batch[-1].rv)
                except sqlite3.Error:
                    pass
                else:
                    self.reserve.retake_soon()
                    return [None] * len(batch)
            return [self._commit_alone(pending) for pending in batch]

    def _commit_alone(self, pending: PendingWrite) -> BaseException | None:
        try:
            self._write_sql(pending.durable, pending.statements, pending.rv,
                            removal=pending.removal)
        except Exception as e:  # noqa: BLE001 - handed to its writer
            return e
        return None

    def _write_sql(self, durable: bool, statements: Iterable[tuple[str, tuple]], rv: int, *,
                   removal: bool = False) -> None:
        """One transaction. `removal`: it frees space, so it may use the disk reserve."""
        statements = list(statements)
        try:
            self._transaction(durable, statements, rv)
        except sqlite3.OperationalError as e:
            if not _disk_full(e):
                raise
            if not (removal and self.reserve.release()):
                raise InsufficientStorage(
                    f"no space left on device: the store under {self.reserve.path.parent} "
                    "cannot take this write; delete objects or free disk space") from None
            log.error("disk full under %s: released the %d MiB reserve so that deletes "
                      "work; free disk space", self.reserve.path.parent, RESERVE_BYTES >> 20)
            try:
                self._transaction(durable, statements, rv)
            except sqlite3.OperationalError as again:
                if not _disk_full(again):
                    raise
                raise InsufficientStorage(
                    f"no space left on device under {self.reserve.path.parent}, even after "
                    "releasing the reserve") from None
        self.reserve.retake_soon()

    def _transaction(self, durable: bool, statements: builtins.list[tuple[str, tuple]],
                     rv: int) -> None:
        db = self._db
        if durable:
            db.execute("PRAGMA synchronous=FULL")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    db.execute(sql, params)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (rv,))
                db.execute("COMMIT")
            except BaseException:
                # SQLite rolls back by itself after some errors (a full disk among them); a
                # second ROLLBACK would hide the real error behind "no transaction is active".
                if db.in_transaction:
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error:
                        log.exception("rollback failed")
                raise
        finally:
            if durable:
                db.execute("PRAGMA synchronous=NORMAL")


class DiskReserve:
    """A file of `size` allocated bytes that the store gives up when the disk is full."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self._retry_at = 0.0

    def ensure(self) -> bool:
        """Allocate the reserve (if it is not already); False when the disk has no room."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as e:
            log.warning("cannot create the disk reserve %s: %s", self.path, e)
            return False
        try:
            if os.fstat(fd).st_size >= self.size:
                return True
            os.posix_fallocate(fd, 0, self.size)
            return True
        except OSError as e:
            os.ftruncate(fd, 0)  # all or nothing: a half reserve would fool release()
            if e.errno != errno.ENOSPC:
                log.warning("cannot allocate the disk reserve %s: %s", self.path, e)
            return False
        finally:
            os.close(fd)

    def release(self) -> bool:
        """Give the reserve back to the file system; whether there was one to give."""
        try:
            if os.stat(self.path).st_size == 0:
                return False
            os.truncate(self.path, 0)
        except OSError:
            return False
        self._retry_at = time.monotonic() + RESERVE_RETRY_SECONDS
        return True

    def retake_soon(self) -> None:
        """After a write: take the reserve back if it was released and the retry time came."""
        if self._retry_at and time.monotonic() >= self._retry_at:
            self._retry_at = 0.0 if self.ensure() else time.monotonic() + RESERVE_RETRY_SECONDS


def _disk_full(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF == SQLITE_FULL
    return "disk is full" in str(error)


def _text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)
