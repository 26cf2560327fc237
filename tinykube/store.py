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
"""

from __future__ import annotations

import collections
import json
import math
import pickle
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import trio

from tinykube.model.errors import AlreadyExists, Conflict, Gone, NotFound

HISTORY_LIMIT = 20_000  # watch events kept for late watchers
EVENT_LIMIT = 5_000  # Kubernetes Events kept (they are short-lived there too)

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"

Key = tuple[str, str, str]  # (kind, namespace, name)


def clone(obj: dict) -> dict:
    """A deep copy; a pickle round trip is ~5x faster than copy.deepcopy on pod-sized dicts,
    and every read hands out a copy."""
    return pickle.loads(pickle.dumps(obj, pickle.HIGHEST_PROTOCOL))


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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

    def __init__(self, store: "Store", kind: str, namespace: str | None) -> None:
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

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> "Watch":
        return self

    async def __anext__(self) -> WatchEvent:
        try:
            event = await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        # Copy on the way out: watchers may mutate what they get.
        return WatchEvent(event.type, clone(event.object), event.resource_version)

    def drain_nowait(self) -> list[WatchEvent]:
        """Every event already buffered, without waiting (to handle a burst in one pass)."""
        events = []
        while True:
            try:
                event = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return events
            events.append(WatchEvent(event.type, clone(event.object), event.resource_version))


class Store:
    def __init__(self, db_path: Path) -> None:
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
        for data, in self._db.execute("SELECT data FROM objects"):
            obj = json.loads(data)
            self._objects[object_key(obj)] = obj
        self._history: collections.deque[tuple[int, str, str, WatchEvent]] = collections.deque(
            maxlen=HISTORY_LIMIT
        )
        self._watches: set[Watch] = set()
        self._events: collections.deque[dict] = collections.deque(maxlen=EVENT_LIMIT)
        self._event_series: dict[tuple, dict] = {}

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
               involved_name: str | None = None, involved_kind: str | None = None) -> list[dict]:
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
        watch = Watch(self, kind, namespace)
        if since is not None and since < self._rv:
            oldest = self._history[0][0] if self._history else self._rv + 1
            if since < oldest - 1:
                raise Gone(f"too old resource version: {since} ({oldest - 1})")
            for rv, k, ns, event in self._history:
                if rv > since and watch.wants(k, ns):
                    watch.deliver(event)
        self._watches.add(watch)
        return watch

    # ---- internals ---------------------------------------------------------------------

    def _current_for_write(self, key: Key, obj: dict) -> dict:
        current = self._objects.get(key)
        if current is None:
            raise NotFound.for_object(key[0], key[2])
        meta = obj.get("metadata", {})
        if meta.get("uid") and meta["uid"] != current["metadata"]["uid"]:
            raise Conflict.for_object(key[0], key[2], why="the object has been deleted and recreated")
        rv = meta.get("resourceVersion")
        if rv not in (None, "") and str(rv) != current["metadata"]["resourceVersion"]:
            raise Conflict.for_object(key[0], key[2])
        return current

    def _next_rv(self) -> int:
        return self._rv + 1

    def _commit(self, type: str, key: Key, obj: dict, durable: bool) -> dict:
        rv = self._next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        self._write_sql(durable, [
            ("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?)",
             (*key, rv, json.dumps(obj, separators=(",", ":")))),
        ], rv)
        self._objects[key] = obj
        self._publish(type, key, obj, rv)
        return clone(obj)

    def _remove(self, key: Key, obj: dict, durable: bool) -> dict:
        rv = self._next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        self._write_sql(durable, [
            ("DELETE FROM objects WHERE kind=? AND namespace=? AND name=?", key),
        ], rv)
        self._objects.pop(key, None)
        self._publish(DELETED, key, obj, rv)
        return clone(obj)

    def _write_sql(self, durable: bool, statements: Iterable[tuple[str, tuple]], rv: int) -> None:
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
                db.execute("ROLLBACK")
                raise
        finally:
            if durable:
                db.execute("PRAGMA synchronous=NORMAL")
        self._rv = rv

    def _publish(self, type: str, key: Key, obj: dict, rv: int) -> None:
        event = WatchEvent(type, clone(obj), rv)
        self._history.append((rv, key[0], key[1], event))
        for watch in list(self._watches):
            if watch.wants(key[0], key[1]):
                watch.deliver(event)


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
