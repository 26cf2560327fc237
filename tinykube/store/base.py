"""What every store backend shares: the object rules, the in-memory cache and the watch.

Callers see one interface (`Store`): synchronous reads from an in-memory copy of every object,
async writes acknowledged only once the backend made them durable, and watches fed from a
bounded history of serialized events. The object rules live here once: system fields set by
the store, generation following spec, optimistic concurrency on resourceVersion, graceful
deletion of pods, finalizers holding a deletion.

A backend supplies the write path (`_commit`, `_remove`): make the new object durable, give it
its resourceVersion (one monotonic counter: SQLite's own, or etcd's revision), then apply it
through `_apply`, which updates the cache and tells the watchers. A backend whose cache can be
behind the durable state (etcd, written by several servers) raises `StaleCache` from its write
path when a compare failed; the rules are then run again on the fresher cache, which is how
kube-apiserver's GuaranteedUpdate retries with the current object.
"""

from __future__ import annotations

import builtins
import collections
import json
import math
import pickle
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import trio

from tinykube.model import integrity
from tinykube.model.errors import (
    AlreadyExists,
    Conflict,
    FieldError,
    Gone,
    Invalid,
    NotFound,
)
from tinykube.model.meta import format_time, now_iso, parse_time

HISTORY_LIMIT = 20_000  # watch events kept for late watchers
# ...and their total size as JSON: the history holds serialized events (a decoded pod costs
# ~10x its JSON), so 20,000 events of big objects stay within this bound.
HISTORY_BYTES = 16 * 1024 * 1024
EVENT_LIMIT = 5_000  # Kubernetes Events kept (they are short-lived there too)
STALE_RETRIES = 16  # fresh-cache retries of one write before it fails as a Conflict

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"

Key = tuple[str, str, str]  # (kind, namespace, name)

T = TypeVar("T")


def _series(involved: dict, type: Any, reason: Any, message: Any) -> tuple:
    """What makes two events one series (counted, as Kubernetes' event correlator does)."""
    return (involved.get("kind"), involved.get("namespace", "default"), involved.get("name"),
            involved.get("uid"), type, reason, message)


def clone(obj: dict) -> dict:
    """A deep copy; a pickle round trip is ~5x faster than copy.deepcopy on pod-sized dicts,
    and every read hands out a copy."""
    return pickle.loads(pickle.dumps(obj, pickle.HIGHEST_PROTOCOL))


def object_key(obj: dict) -> Key:
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace") or "default", meta["name"])


class StaleCache(Exception):
    """A backend's compare failed: the cache was behind; run the write's rules again."""


@dataclass(frozen=True)
class WatchEvent:
    type: str
    object: dict
    resource_version: int
    data: bytes = b""  # the object as JSON, encoded once for every watcher that sends it


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
        return _copied(event)

    async def receive_batch(self, *, shared: bool = False) -> list[WatchEvent]:
        """The next event and every one already waiting behind it (`ready_nowait`), copied
        unless `shared`. Raises StopAsyncIteration when the watch ends."""
        first = await self.receive_shared()
        return [first if shared else _copied(first), *self.ready_nowait(shared=shared)]

    def ready_nowait(self, *, shared: bool = False) -> list[WatchEvent]:
        """The events already waiting, taken without a checkpoint: copied as `__anext__`
        copies them, or as `receive_shared` gives them with `shared`. Each receive is a trip
        through trio's run queue; a watcher whose work per event is cheap takes a backlog in
        one pass instead (the kubelet, one event per trip, fell up to 0.45 s behind the pods
        a 20-replica rollout created, queued behind the status events of those starting)."""
        events: list[WatchEvent] = []
        while True:
            try:
                event = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return events  # a closed watch ends at the next receive
            events.append(event if shared else _copied(event))

    async def receive_shared(self) -> WatchEvent:
        """The next event as every watcher shares it, not copied: for a watcher that only
        reads it and sends `data` on (the API server's watch streams). Never mutate it.
        Raises StopAsyncIteration when the watch ends."""
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


def _copied(event: WatchEvent) -> WatchEvent:
    """Copy on the way out: watchers may mutate what they get."""
    return WatchEvent(event.type, clone(event.object), event.resource_version, event.data)


class Store:
    """The store interface (see the module docstring). `Store(path)` still opens the embedded
    SQLite store, the default, as it did before there were backends."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Store:
        if cls is Store:
            from .sqlite import SqliteStore

            cls = SqliteStore
        return object.__new__(cls)

    def __init__(self) -> None:
        self._rv = 0
        self._objects: dict[Key, dict] = {}
        # The JSON of cached objects, keyed like _objects and valid while the object is the
        # one cached (identity checked): lists are sent from it without encoding again.
        self._encoded: dict[Key, tuple[dict, bytes]] = {}
        # Stored objects that could not be served, by their key: skipped, never touched but
        # by `tinykube doctor`.
        self.unloadable: dict[Key, str] = {}
        # (rv, kind, namespace, type, JSON of the object): serialized to bound memory by bytes.
        self._history: collections.deque[tuple[int, str, str, str, bytes]] = collections.deque()
        self._history_bytes = 0
        # The oldest `since` the history answers: every change after it is in the history.
        # A backend sets it when it loads (nothing before that is known), trimming raises it.
        self._history_floor = 0
        self._rv_changed = trio.Event()
        self._watches: set[Watch] = set()
        self._events: collections.deque[dict] = collections.deque(maxlen=EVENT_LIMIT)
        self._event_series: dict[tuple, dict] = {}

    def close(self) -> None:
        for watch in list(self._watches):
            watch.close()

    def set_aside(self, key: Key, backup_dir: Path | None = None) -> Path:
        """Move an unloadable object out of the store into a backup file (`tinykube doctor
        --repair`; by default in the store's own backup directory); returns the file."""
        raise NotFound(f"no unloadable object is stored as {'/'.join(key)}")

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
        *,
        copy: bool = True,
    ) -> builtins.list[dict]:
        """Copies of the matching objects, sorted by namespace and name. `copy=False` hands
        out the stored objects themselves, which the caller must only read (the store
        replaces an object on every write, never changes one in place): a controller that
        reads every pod of a namespace on each reconcile would otherwise copy them all each
        time (the largest cost of the daemon's own thread in a 500-pod scale-out)."""
        found = []
        for (k, ns, _), obj in self._objects.items():
            if k != kind or (namespace is not None and ns != namespace):
                continue
            if selector is not None and not selector(obj["metadata"].get("labels") or {}):
                continue
            found.append(clone(obj) if copy else obj)
        found.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return found

    def list_encoded(
        self,
        kind: str,
        namespace: str | None = None,
        selector: Callable[[dict], bool] | None = None,
    ) -> builtins.list[tuple[dict, bytes]]:
        """`list` for the API server: each object as stored (shared: never mutate it) with
        its JSON, in the same order. No copy and no encoding per request, so a list of
        10,000 pods costs a join of their JSON."""
        found = []
        encoded = self._encoded
        for key, obj in self._objects.items():
            if key[0] != kind or (namespace is not None and key[1] != namespace):
                continue
            if selector is not None and not selector(obj["metadata"].get("labels") or {}):
                continue
            cached = encoded.get(key)
            if cached is None or cached[0] is not obj:
                cached = encoded[key] = (obj, json.dumps(obj, separators=(",", ":")).encode())
            found.append((key, cached))
        # (namespace, name) order, as `list`: the keys say it, compared in C (keys are unique,
        # so the objects are never compared).
        found.sort()
        return [cached for _, cached in found]

    def count(self, kind: str) -> int:
        return sum(1 for (k, _, _) in self._objects if k == kind)

    # ---- writes ------------------------------------------------------------------------

    async def create(self, obj: dict, *, durable: bool = False) -> dict:
        return await self._retrying(lambda: self._create_once(obj, durable))

    async def _create_once(self, obj: dict, durable: bool) -> dict:
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
        return await self._commit(ADDED, key, obj, durable)

    async def update(self, obj: dict, *, durable: bool = False) -> dict:
        """Replace metadata and spec; status stays as stored (Kubernetes' main resource)."""
        return await self._retrying(lambda: self._update_once(obj, durable))

    async def _update_once(self, obj: dict, durable: bool) -> dict:
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
            return await self._remove(key, new, durable)  # the last finalizer just went
        return await self._commit(MODIFIED, key, new, durable)

    async def update_status(self, obj: dict, *, durable: bool = False) -> dict:
        """Replace only status (Kubernetes' /status subresource)."""
        return await self._retrying(lambda: self._update_status_once(obj, durable))

    async def _update_status_once(self, obj: dict, durable: bool) -> dict:
        key = object_key(obj)
        current = self._current_for_write(key, obj)
        if obj.get("status") == current.get("status"):
            return clone(current)
        new = clone(current)
        new["status"] = clone(obj.get("status") or {})
        return await self._commit(MODIFIED, key, new, durable)

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
        return await self._retrying(lambda: self._delete_once(
            (kind, namespace, name), grace_period, propagation, uid, durable))

    async def _delete_once(self, key: Key, grace_period: int | None, propagation: str | None,
                           uid: str | None, durable: bool) -> dict:
        kind, _, name = key
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
            return await self._remove(key, new, durable)
        if grace_period == 0 and kind == "Pod" and not finalizers:
            return await self._remove(key, new, durable)
        changed = False
        if finalizers != list(meta.get("finalizers") or []):
            meta["finalizers"] = finalizers
            changed = True
        if kind == "Pod":
            grace = _pod_grace(new, grace_period)
            # A second delete may shorten the grace period, never lengthen it (as in Kubernetes).
            previous = meta.get("deletionGracePeriodSeconds")
            if previous is None or grace < previous:
                meta["deletionTimestamp"] = _pod_deletion_time(meta, previous, grace)
                meta["deletionGracePeriodSeconds"] = grace
                changed = True
        elif not meta.get("deletionTimestamp"):
            meta["deletionTimestamp"] = now_iso()
            changed = True
        if not changed:
            return clone(current)
        return await self._commit(MODIFIED, key, new, durable)

    async def _retrying(self, write: Callable[[], Awaitable[T]]) -> T:
        for _ in range(STALE_RETRIES):
            try:
                return await write()
            except StaleCache:
                continue
        raise Conflict("the object kept changing under this write; try again")

    # ---- the backend's write path ------------------------------------------------------

    async def _commit(self, type: str, key: Key, obj: dict, durable: bool) -> dict:
        """Store `obj` (new or changed) durably, then `_apply` it; a copy of what was stored.
        `obj["metadata"]["resourceVersion"]` is the version the decision was made on (absent
        for a create)."""
        raise NotImplementedError

    async def _remove(self, key: Key, obj: dict, durable: bool) -> dict:
        """Remove the object durably, then `_apply` DELETED; a copy of `obj` as removed."""
        raise NotImplementedError

    def _check_identity(self, obj: dict, key: Key) -> None:
        why = integrity.identity_problem(obj, key)
        if why:  # the last line of defence: nothing unaddressable is ever stored
            path, _, message = why.partition(": ")
            raise Invalid.for_object(obj, [FieldError(path, message or why)])

    def _apply(self, type: str, key: Key, obj: dict, rv: int, data: str) -> None:
        """A durable change at `rv` (`data`: the object as JSON): into the cache, the history
        and every watcher. Changes arrive in rv order."""
        encoded = data.encode()
        if type == DELETED:
            self._objects.pop(key, None)
            self._encoded.pop(key, None)
        else:
            self._objects[key] = obj
            self._encoded[key] = (obj, encoded)
        self._publish(type, key, obj, rv, encoded)
        self._advance(rv)

    def _advance(self, rv: int) -> None:
        if rv > self._rv:
            self._rv = rv
            self._rv_changed.set()
            self._rv_changed = trio.Event()

    # ---- events (Kubernetes Events, kept in memory) ------------------------------------

    async def record_event(self, obj: dict, type: str, reason: str, message: str, *,
                           source: str = "tinykube", host: str | None = None) -> None:
        """Record (or count again) an event about `obj`; `source` is the component that
        reports it, kubectl's "From" column (`kubelet`, `deployment-controller`, ...), `host`
        the node it runs on (agents' kubelets)."""
        meta = obj["metadata"]
        stamp = now_iso()
        involved = {"kind": obj["kind"], "namespace": meta.get("namespace", "default"),
                    "name": meta["name"], "uid": meta.get("uid"),
                    "apiVersion": obj.get("apiVersion")}
        existing = self._event_series.get(_series(involved, type, reason, message))
        if existing is not None:
            await self._keep_event(dict(existing, count=existing["count"] + 1,
                                        lastTimestamp=stamp))
            return
        await self._keep_event({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                         "namespace": meta.get("namespace", "default")},
            "involvedObject": involved,
            "type": type,
            "reason": reason,
            "message": message,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": source, **({"host": host} if host else {})},
        })

    async def _keep_event(self, event: dict) -> None:
        """Keep a new or recounted event: in memory here; a shared backend stores it so that
        every server sees it (etcd.py)."""
        self._remember_event(event)

    def _remember_event(self, event: dict) -> None:
        """Into the bounded in-memory list: a recount replaces its series' event in place."""
        inv = event.get("involvedObject") or {}
        series = _series(inv, event.get("type"), event.get("reason"), event.get("message"))
        existing = self._event_series.get(series)
        if existing is not None and existing["metadata"]["name"] == event["metadata"]["name"]:
            existing.clear()
            existing.update(event)
            return
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
            if since < self._history_floor:
                raise Gone(f"too old resource version: {since} ({self._history_floor})")
            for rv, k, ns, type, data in self._history:
                if rv > since and watch.wants(k, ns):
                    watch.deliver(WatchEvent(type, json.loads(data), rv, data))
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

    def _publish(self, type: str, key: Key, obj: dict, rv: int, data: bytes | str) -> None:
        encoded = data if isinstance(data, bytes) else data.encode()
        event = WatchEvent(type, clone(obj), rv, encoded)
        self._history.append((rv, key[0], key[1], type, encoded))
        self._history_bytes += len(encoded)
        while self._history and (len(self._history) > HISTORY_LIMIT
                                 or self._history_bytes > HISTORY_BYTES):
            trimmed = self._history.popleft()
            self._history_bytes -= len(trimmed[4])
            self._history_floor = max(self._history_floor, trimmed[0])
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


def _pod_deletion_time(meta: dict, previous_grace: int | None, grace: int) -> str:
    """A pod's deletionTimestamp is when it is due to be gone, as Kubernetes writes it: the
    first delete's time plus the grace period; a shorter second one moves it earlier."""
    requested = parse_time(meta.get("deletionTimestamp"))
    if requested is None or previous_grace is None:
        return format_time(time.time() + grace)
    return format_time(requested - previous_grace + grace)


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
