"""The embedded object store: SQLite for durability, an in-memory index for reads, and watch.

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

All methods run on the trio thread: SQLite commits are short, and keeping one writer on one
thread makes the ordering of resourceVersions and watch events trivially consistent.

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
import collections
import errno
import json
import logging
import math
import os
import pickle
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import trio

from tinykube.model import integrity
from tinykube.model.errors import (
    AlreadyExists,
    Conflict,
    FieldError,
    Gone,
    InsufficientStorage,
    Invalid,
    NotFound,
)
from tinykube.model.meta import now_iso

log = logging.getLogger("tinykube.store")

HISTORY_LIMIT = 20_000  # watch events kept for late watchers
# ...and their total size as JSON: the history holds serialized events (a decoded pod costs
# ~10x its JSON), so 20,000 events of big objects stay within this bound.
HISTORY_BYTES = 16 * 1024 * 1024
RESERVE_BYTES = 8 * 1024 * 1024  # released so that deletes work on a full disk
RESERVE_RETRY_SECONDS = 10.0
SQLITE_FULL = 13
EVENT_LIMIT = 5_000  # Kubernetes Events kept (they are short-lived there too)

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"

Key = tuple[str, str, str]  # (kind, namespace, name)


def clone(obj: dict) -> dict:
    """A deep copy; a pickle round trip is ~5x faster than copy.deepcopy on pod-sized dicts,
    and every read hands out a copy."""
    return pickle.loads(pickle.dumps(obj, pickle.HIGHEST_PROTOCOL))


def object_key(obj: dict) -> Key:
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace") or "default", meta["name"])


@dataclass(frozen=True)
class WatchEvent:
    type: str
    object: dict
    resource_version: int


class Watch:
    """An async iterator of the WatchEvents of one kind (optionally one namespace)."""

    def __init__(self, store: Store, kind: str, namespace: str | None) -> None:
        self._store = store
        self.kind = kind
        self.namespace = namespace
        self._send, self._receive = trio.open_memory_channel[WatchEvent](math.inf)

    def wants(self, kind: str, namespace: str) -> bool:
        return kind == self.kind and (self.namespace is None or self.namespace == namespace)

    def deliver(self, event: WatchEvent) -> None:
        try:
            self._send.send_nowait(event)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def close(self) -> None:
        self._store._watches.discard(self)
        self._send.close()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> WatchEvent:
        try:
            event = await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        # Copy on the way out: watchers may mutate what they get.
        return WatchEvent(event.type, clone(event.object), event.resource_version)


class Store:
    def __init__(self, db_path: Path) -> None:
        self.path = db_path
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(db_path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS objects (kind TEXT, namespace TEXT, name TEXT,"
            " rv INTEGER, data TEXT, PRIMARY KEY (kind, namespace, name))"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER)")
        row = self._db.execute("SELECT value FROM meta WHERE key='rv'").fetchone()
        self._rv: int = row[0] if row else 0
        self._objects: dict[Key, dict] = {}
        # Rows that could not be served, by their key: skipped, never touched but by doctor.
        self.unloadable: dict[Key, str] = {}
        self._load()
        # (rv, kind, namespace, type, JSON of the object): serialized to bound memory by bytes.
        self._history: collections.deque[tuple[int, str, str, str, bytes]] = collections.deque()
        self._history_bytes = 0
        self._rv_changed = trio.Event()
        self.reserve = DiskReserve(db_path.parent / "state.reserve", RESERVE_BYTES)
        self.reserve.ensure()
        self._watches: set[Watch] = set()
        self._events: collections.deque[dict] = collections.deque(maxlen=EVENT_LIMIT)
        self._event_series: dict[tuple, dict] = {}

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

    def set_aside(self, key: Key, backup_dir: Path) -> Path:
        """Move an unloadable row out of the store into a backup file (`tinykube doctor
        --repair`); returns the file. The file is written and synced before the row goes."""
        if key not in self.unloadable:
            raise NotFound(f"no unloadable object is stored as {'/'.join(key)}")
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
        self._write_sql(True, [
            ("DELETE FROM objects WHERE kind=? AND namespace=? AND name=?", key),
        ], self._rv, removal=True)
        del self.unloadable[key]
        log.warning("stored object %s set aside to %s", "/".join(key), path)
        return path

    def close(self) -> None:
        for watch in list(self._watches):
            watch.close()
        self._db.close()

    @property
    def resource_version(self) -> int:
        return self._rv

    # ---- reads -------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> dict:
        obj = self._objects.get((kind, namespace, name))
        if obj is None:
            raise NotFound.for_object(kind, name)
        return clone(obj)

    def try_get(self, kind: str, namespace: str, name: str) -> dict | None:
        obj = self._objects.get((kind, namespace, name))
        return clone(obj) if obj is not None else None

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        selector: Callable[[dict], bool] | None = None,
    ) -> list[dict]:
        found = []
        for (k, ns, _), obj in self._objects.items():
            if k != kind or (namespace is not None and ns != namespace):
                continue
            if selector is not None and not selector(obj["metadata"].get("labels") or {}):
                continue
            found.append(clone(obj))
        found.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return found

    def count(self, kind: str) -> int:
        return sum(1 for (k, _, _) in self._objects if k == kind)

    # ---- writes ------------------------------------------------------------------------

    async def create(self, obj: dict, *, durable: bool = False) -> dict:
        obj = clone(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        key = object_key(obj)
        if key in self._objects:
            raise AlreadyExists.for_object(key[0], key[2])
        if key in self.unloadable:
            raise AlreadyExists(
                f'{key[0]} "{key[2]}" cannot be created: a stored object that could not be '
                "loaded holds this name (run `tinykube doctor`)", details={"name": key[2]})
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        meta["generation"] = 1
        for transient in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(transient, None)
        return self._commit(ADDED, key, obj, durable)

    async def update(self, obj: dict, *, durable: bool = False) -> dict:
        """Replace metadata and spec; status stays as stored (Kubernetes' main resource)."""
        key = object_key(obj)
        current = self._current_for_write(key, obj)
        new = clone(obj)
        new["metadata"] = _keep_system_fields(current["metadata"], new.get("metadata", {}))
        if "status" in current:
            new["status"] = clone(current["status"])
        else:
            new.pop("status", None)
        if new.get("spec") != current.get("spec"):
            new["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        if new == current:
            return clone(current)
        if _deletion_complete(new) and current["metadata"].get("finalizers"):
            return self._remove(key, new, durable)  # the last finalizer just went
        return self._commit(MODIFIED, key, new, durable)

    async def update_status(self, obj: dict, *, durable: bool = False) -> dict:
        """Replace only status (Kubernetes' /status subresource)."""
        key = object_key(obj)
        current = self._current_for_write(key, obj)
        if obj.get("status") == current.get("status"):
            return clone(current)
        new = clone(current)
        new["status"] = clone(obj.get("status") or {})
        return self._commit(MODIFIED, key, new, durable)

    async def delete(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        grace_period: int | None = None,
        propagation: str | None = None,
        uid: str | None = None,
        durable: bool = False,
    ) -> dict:
        key = (kind, namespace, name)
        current = self._objects.get(key)
        if current is None or (uid is not None and current["metadata"]["uid"] != uid):
            raise NotFound.for_object(kind, name)
        new = clone(current)
        meta = new["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if propagation == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if propagation == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        graceful = kind == "Pod" and _pod_grace(new, grace_period) > 0
        if not finalizers and not graceful:
            return self._remove(key, new, durable)
        if grace_period == 0 and kind == "Pod" and not finalizers:
            return self._remove(key, new, durable)
        changed = False
        if finalizers != list(meta.get("finalizers") or []):
            meta["finalizers"] = finalizers
            changed = True
        if not meta.get("deletionTimestamp"):
            meta["deletionTimestamp"] = now_iso()
            changed = True
        if kind == "Pod":
            grace = _pod_grace(new, grace_period)
            # A second delete may shorten the grace period, never lengthen it (as in Kubernetes).
            previous = meta.get("deletionGracePeriodSeconds")
            if previous is None or grace < previous:
                meta["deletionGracePeriodSeconds"] = grace
                changed = True
        if not changed:
            return clone(current)
        return self._commit(MODIFIED, key, new, durable)

    # ---- events (Kubernetes Events, kept in memory) ------------------------------------

    async def record_event(self, obj: dict, type: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        series = (obj["kind"], meta.get("namespace", "default"), meta["name"], meta.get("uid"),
                  type, reason, message)
        stamp = now_iso()
        existing = self._event_series.get(series)
        if existing is not None:
            existing["count"] += 1
            existing["lastTimestamp"] = stamp
            return
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                         "namespace": meta.get("namespace", "default")},
            "involvedObject": {"kind": obj["kind"], "namespace": meta.get("namespace", "default"),
                               "name": meta["name"], "uid": meta.get("uid"),
                               "apiVersion": obj.get("apiVersion")},
            "type": type,
            "reason": reason,
            "message": message,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": "tinykube"},
        }
        if len(self._events) == self._events.maxlen:
            oldest = self._events[0]
            self._event_series = {k: v for k, v in self._event_series.items() if v is not oldest}
        self._events.append(event)
        self._event_series[series] = event

    def events(self, namespace: str | None = None, involved_uid: str | None = None,
               involved_name: str | None = None, involved_kind: str | None = None
               ) -> builtins.list[dict]:
        found = []
        for event in self._events:
            inv = event["involvedObject"]
            if namespace is not None and event["metadata"]["namespace"] != namespace:
                continue
            if involved_uid is not None and inv.get("uid") != involved_uid:
                continue
            if involved_name is not None and inv.get("name") != involved_name:
                continue
            if involved_kind is not None and inv.get("kind") != involved_kind:
                continue
            found.append(clone(event))
        return found

    # ---- watch -------------------------------------------------------------------------

    def watch(self, kind: str, namespace: str | None = None, since: int | None = None) -> Watch:
        """`since` beyond the current resourceVersion: the caller waits for it first
        (`wait_for_resource_version`); here it simply gets the changes after it."""
        watch = Watch(self, kind, namespace)
        if since is not None and since < self._rv:
            oldest = self._history[0][0] if self._history else self._rv + 1
            if since < oldest - 1:
                raise Gone(f"too old resource version: {since} ({oldest - 1})")
            for rv, k, ns, type, data in self._history:
                if rv > since and watch.wants(k, ns):
                    watch.deliver(WatchEvent(type, json.loads(data), rv))
        self._watches.add(watch)
        return watch

    async def wait_for_resource_version(self, rv: int, timeout: float) -> bool:
        """Wait up to `timeout` seconds until the store has reached `rv`; whether it did
        (Kubernetes' watch cache waits likewise before answering "Too large resource
        version")."""
        with trio.move_on_after(timeout):
            while self._rv < rv:
                await self._rv_changed.wait()
        return self._rv >= rv

    @property
    def history_bytes(self) -> int:
        return self._history_bytes

    # ---- internals ---------------------------------------------------------------------

    def _current_for_write(self, key: Key, obj: dict) -> dict:
        current = self._objects.get(key)
        if current is None:
            raise NotFound.for_object(key[0], key[2])
        meta = obj.get("metadata", {})
        if meta.get("uid") and meta["uid"] != current["metadata"]["uid"]:
            raise Conflict.for_object(key[0], key[2],
                                      why="the object has been deleted and recreated")
        rv = meta.get("resourceVersion")
        if rv not in (None, "") and str(rv) != current["metadata"]["resourceVersion"]:
            raise Conflict.for_object(key[0], key[2])
        return current

    def _next_rv(self) -> int:
        return self._rv + 1

    def _commit(self, type: str, key: Key, obj: dict, durable: bool) -> dict:
        why = integrity.identity_problem(obj, key)
        if why:  # the last line of defence: nothing unaddressable is ever stored
            path, _, message = why.partition(": ")
            raise Invalid.for_object(obj, [FieldError(path, message or why)])
        rv = self._next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        data = json.dumps(obj, separators=(",", ":"))
        self._write_sql(durable, [
            ("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?)", (*key, rv, data)),
        ], rv)
        self._objects[key] = obj
        self._publish(type, key, obj, rv, data)
        return clone(obj)

    def _remove(self, key: Key, obj: dict, durable: bool) -> dict:
        rv = self._next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        self._write_sql(durable, [
            ("DELETE FROM objects WHERE kind=? AND namespace=? AND name=?", key),
        ], rv, removal=True)
        self._objects.pop(key, None)
        self._publish(DELETED, key, obj, rv, json.dumps(obj, separators=(",", ":")))
        return clone(obj)

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
        self._rv = rv
        self.reserve.retake_soon()
        self._rv_changed.set()
        self._rv_changed = trio.Event()

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

    def _publish(self, type: str, key: Key, obj: dict, rv: int, data: str) -> None:
        event = WatchEvent(type, clone(obj), rv)
        encoded = data.encode()
        self._history.append((rv, key[0], key[1], type, encoded))
        self._history_bytes += len(encoded)
        while self._history and (len(self._history) > HISTORY_LIMIT
                                 or self._history_bytes > HISTORY_BYTES):
            self._history_bytes -= len(self._history.popleft()[4])
        for watch in list(self._watches):
            if watch.wants(key[0], key[1]):
                watch.deliver(event)


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


def _deletion_complete(obj: dict) -> bool:
    """Being deleted, with nothing left to wait for: no finalizer, and for a pod its processes
    gone (grace period 0, which only the runtime or a forced delete sets)."""
    meta = obj["metadata"]
    if not meta.get("deletionTimestamp") or meta.get("finalizers"):
        return False
    return obj["kind"] != "Pod" or meta.get("deletionGracePeriodSeconds") == 0


def _pod_grace(pod: dict, grace_period: int | None) -> int:
    if grace_period is not None:
        return max(0, int(grace_period))
    return int(pod.get("spec", {}).get("terminationGracePeriodSeconds", 30))


# Fields only the store sets; a client's copy of them is ignored (uid is checked separately).
_SYSTEM_FIELDS = ("uid", "creationTimestamp", "generation", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "resourceVersion", "namespace", "name")


def _keep_system_fields(current: dict, incoming: dict) -> dict:
    merged = clone(incoming)
    for field in _SYSTEM_FIELDS:
        if field in current:
            merged[field] = clone(current[field])
        else:
            merged.pop(field, None)
    for empty in ("labels", "annotations", "finalizers", "ownerReferences"):
        if empty in merged and not merged[empty]:
            del merged[empty]
    return merged
