"""The etcd v3 backend: the same store, kept in etcd, shared by several API servers.

Semantics as kube-apiserver's etcd3 storage (apiserver/pkg/storage/etcd3/store.go):
- each object is one key, `/registry/<kind>/<namespace>/<name>`, its value the object as JSON
  without resourceVersion: the resourceVersion is the key's mod revision, etcd's one
  monotonic counter;
- a create is a transaction comparing the key's create revision with 0, an update or a delete
  one comparing its mod revision with the version the change was decided on; a failed compare
  means this server's cache was behind: it catches up and decides again (so a caller's stale
  resourceVersion is a 409 Conflict, a name taken on another server a 409 AlreadyExists);
- a write is acknowledged once etcd committed it (raft and fsync: `durable` changes nothing).

Reads stay synchronous: like the apiserver's watch cache, every server keeps all objects in
memory, fed by one etcd watch over the whole key space from the revision it listed at (every
revision arrives, so the cache's resourceVersion is exactly etcd's). A write returns once the
cache has seen it, so a caller reads its own writes, and watchers get every change of every
server in revision order. At start the cache also replays up to `REPLAY_REVISIONS` past
revisions into its watch history, so a watch from a recent resourceVersion survives a server
restart; older than that, or than etcd's compaction, it gets 410 Gone.

If etcd compacted past what the cache's own watch has seen (the cache fell far behind), the
cache lists again, tells watchers what changed, and answers older watches with Gone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from .base import ADDED, DELETED, MODIFIED, Key, StaleCache, Store, clone
from .etcdclient import EtcdClient, b64, revision, unb64
from .etcdcompact import compact_forever
from .location import DEFAULT_COMPACTION_SECONDS, EtcdTLS, StoreUnavailable

from tinykube.model import integrity

log = logging.getLogger("tinykube.store.etcd")

PREFIX = b"/registry/"
# Events live beside the objects, outside the object cache: every server's watch sees them
# (so `describe` on any server lists them) and etcd drops them after EVENT_TTL_SECONDS, as
# kube-apiserver's --event-ttl (1 h) does with a lease per write.
EVENTS_PREFIX = b"/tinykube/events/"
EVENT_TTL_SECONDS = 3600
EVENT_LEASE_REUSE_SECONDS = 300  # one lease for the events of 5 min: they go within 5 min
REPLAY_REVISIONS = 1000  # past revisions a starting cache puts into its watch history
CATCH_UP_SECONDS = 60.0  # a committed write waits this long for the cache to see it
RECONNECT_SECONDS = (0.2, 5.0)  # the watch's reconnect back-off: first, at most


def etcd_key(key: Key) -> bytes:
    kind, namespace, name = key
    return PREFIX + f"{kind}/{namespace}/{name}".encode()


def store_key(raw: bytes) -> Key | None:
    """(kind, namespace, name) of an etcd key, None for a key that is not an object's."""
    if not raw.startswith(PREFIX):
        return None
    parts = raw[len(PREFIX):].decode("utf-8", "replace").split("/", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def _event_of(kv: dict) -> dict | None:
    try:
        event = json.loads(unb64(kv.get("value")))
    except ValueError:
        return None
    ok = (isinstance(event, dict) and isinstance(event.get("metadata"), dict)
          and isinstance(event.get("involvedObject"), dict)
          and isinstance(event.get("count"), int)
          and {"name", "namespace"} <= event["metadata"].keys())
    return event if ok else None


def _encode(obj: dict) -> str:
    stored = dict(obj, metadata={k: v for k, v in obj["metadata"].items()
                                 if k != "resourceVersion"})
    return b64(json.dumps(stored, separators=(",", ":")))


class EtcdStore(Store):
    def __init__(self, client: EtcdClient) -> None:
        super().__init__()
        self.client = client
        self._seen = 0  # the last revision the cache's watch delivered
        self._loaded = 0  # the revision the cache was listed at
        self._following = trio.CancelScope()
        self._lease: tuple[str, float] | None = None  # (etcd lease id, when granted): events

    @classmethod
    @asynccontextmanager
    async def connect(cls, endpoints: list[str], tls: EtcdTLS | None = None, *,
                      compaction_interval: float = DEFAULT_COMPACTION_SECONDS
                      ) -> AsyncIterator[EtcdStore]:
        """A store on etcd at `endpoints`, its cache listed and followed until the block ends;
        etcd's history compacted every `compaction_interval` seconds (0: never, as
        kube-apiserver's --etcd-compaction-interval=0 leaves it to etcd)."""
        client = EtcdClient(endpoints, tls)
        try:
            store = cls(client)
            await store._list()
            await store._load_events()
            # The history is replayed from before this (see _follow); until then nothing older.
            store._rv = store._history_floor = store._loaded
            async with trio.open_nursery() as nursery:
                await nursery.start(store._follow)
                if compaction_interval > 0:
                    nursery.start_soon(compact_forever, client, compaction_interval)
                try:
                    yield store
                finally:
                    nursery.cancel_scope.cancel()
                    store.close()
        finally:
            with trio.CancelScope(shield=True):
                await client.aclose()

    # ---- the cache ---------------------------------------------------------------------

    async def _list(self) -> None:
        at, kvs = await self.client.range_prefix(PREFIX)
        objects: dict[Key, dict] = {}
        self.unloadable.clear()
        for kv in kvs:
            key = store_key(unb64(kv["key"]))
            if key is None:
                continue
            obj, why = self._decode(key, kv)
            if obj is None:
                self._unloadable(key, why)
            else:
                objects[key] = obj
        self._objects = objects
        self._loaded = at

    async def _load_events(self) -> None:
        _, kvs = await self.client.range_prefix(EVENTS_PREFIX)
        events = [e for e in (_event_of(kv) for kv in kvs) if e is not None]
        for event in sorted(events, key=lambda e: str(e.get("lastTimestamp") or "")):
            self._remember_event(event)

    async def _keep_event(self, event: dict) -> None:
        """Into etcd (every server's watch remembers it, this one's included); events are
        best effort, as the kubelet's event broadcaster: etcd away, only this server keeps
        it."""
        meta = event["metadata"]
        key = EVENTS_PREFIX + f"{meta['namespace']}/{meta['name']}".encode()
        try:
            put: dict[str, Any] = {"key": b64(key), "value": b64(json.dumps(
                event, separators=(",", ":")))}
            lease = await self._event_lease()
            if lease:
                put["lease"] = lease
            response = await self.client.call("/v3/kv/put", put)
            await self.wait_for_resource_version(revision(response), CATCH_UP_SECONDS)
        except (StoreUnavailable, httpx.HTTPError, ValueError) as e:
            log.warning("event %s/%s not stored in etcd (%s): kept by this server only",
                        meta["namespace"], meta["name"], e)
            self._remember_event(event)

    async def _event_lease(self) -> str | None:
        now = trio.current_time()
        if self._lease is None or now - self._lease[1] > EVENT_LEASE_REUSE_SECONDS:
            granted = await self.client.call("/v3/lease/grant", {"TTL": EVENT_TTL_SECONDS})
            self._lease = (str(granted["ID"]), now) if granted.get("ID") else None
        return self._lease[0] if self._lease else None

    def _decode(self, key: Key, kv: dict, *, check_values: bool = True
                ) -> tuple[dict | None, str]:
        """(the object a kv holds, "") or (None, why it cannot be served). `check_values`:
        the full load check, as SQLite's at start; a live change was checked by the server
        that wrote it, so only its identity is (as SQLite checks each write)."""
        data = unb64(kv.get("value"))
        if check_values:
            obj, why = integrity.load_problems(*key, data)
        else:
            try:
                obj = json.loads(data)
            except ValueError as e:
                return None, f"not valid JSON: {e}"
            why = integrity.identity_problem(obj, key)
        if why or obj is None:
            return None, why
        obj["metadata"]["resourceVersion"] = str(int(kv["mod_revision"]))
        return obj, ""

    def _unloadable(self, key: Key, why: str) -> None:
        self.unloadable[key] = why
        log.error("stored object %s cannot be loaded and is skipped: %s", "/".join(key), why)

    async def _follow(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Feed the cache from one watch over every key, reconnecting from the last revision
        seen; started once the past revisions are replayed into the history."""
        # Revision 1 is etcd's empty start: every later revision is one write, one event.
        start = max(2, self._loaded - REPLAY_REVISIONS + 1)
        self._history_floor = start - 1
        started = False
        pause = RECONNECT_SECONDS[0]
        while True:
            self._seen = max(self._seen, start - 1)
            try:
                async with self.client.watch(b"\0", b"\0", start) as results:
                    async for result in results:
                        pause = RECONNECT_SECONDS[0]
                        compacted = int(result.get("compact_revision", 0))
                        if result.get("canceled"):
                            start = await self._after_compaction(compacted)
                            break
                        for event in result.get("events", []):
                            self._on_event(event)
                        if not started and self._seen >= self._loaded:
                            task_status.started()
                            started = True
                    else:
                        start = self._seen + 1
            except (StoreUnavailable, httpx.TransportError) as e:
                log.warning("etcd watch broke (%s); reconnecting from revision %d", e,
                            self._seen + 1)
                start = self._seen + 1
                await trio.sleep(pause)
                pause = min(pause * 2, RECONNECT_SECONDS[1])

    async def _after_compaction(self, compacted: int) -> int:
        """The watch asked for revisions etcd no longer has; where to watch from now."""
        if self._seen < self._loaded:  # still replaying the past: start it later
            self._history_floor = compacted - 1
            return compacted
        log.warning("etcd compacted past revision %d before this server saw it; listing again",
                    self._seen)
        before = self._objects
        await self._list()
        at = self._seen = self._loaded
        for key, obj in before.items():
            if key not in self._objects:
                gone = clone(obj)
                gone["metadata"]["resourceVersion"] = str(at)
                self._publish(DELETED, key, gone, at, json.dumps(gone))
        for key, obj in self._objects.items():
            if before.get(key) != obj:
                self._publish(MODIFIED if key in before else ADDED, key, obj, at,
                              json.dumps(obj))
        # What happened between the old revision and `at` is unknown: older watches are Gone.
        self._history.clear()
        self._history_bytes = 0
        self._history_floor = at
        self._advance(at)  # wakes whoever waits for a revision (a write, a watch)
        return at + 1

    def _on_event(self, event: dict) -> None:
        kv = event.get("kv", {})
        rev = int(kv.get("mod_revision", 0))
        self._seen = max(self._seen, rev)
        raw = unb64(kv.get("key"))
        key = store_key(raw)
        if key is None:
            if raw.startswith(EVENTS_PREFIX) and event.get("type") != "DELETE":
                recorded = _event_of(kv)
                if recorded is not None:
                    self._remember_event(recorded)
            self._advance(rev)
            return
        if rev <= self._loaded:  # already in the cache: only the history wants it
            self._replay(key, event, rev)
            return
        if event.get("type") == "DELETE":
            self.unloadable.pop(key, None)
            if key in self._objects:
                self._remove_cached(key, rev)
            else:
                self._advance(rev)
            return
        obj, why = self._decode(key, kv, check_values=False)
        if obj is None:  # not servable, like a bad row in SQLite: gone from the cache
            self._unloadable(key, why)
            if key in self._objects:
                self._remove_cached(key, rev)
            else:
                self._advance(rev)
            return
        self.unloadable.pop(key, None)
        type = MODIFIED if key in self._objects else ADDED
        self._apply(type, key, obj, rev, json.dumps(obj, separators=(",", ":")))

    def _remove_cached(self, key: Key, rev: int) -> None:
        """DELETED at `rev` with the object as this cache last had it (etcd's prev_kv is the
        same value, already decoded)."""
        gone = clone(self._objects[key])
        gone["metadata"]["resourceVersion"] = str(rev)
        self._apply(DELETED, key, gone, rev, json.dumps(gone, separators=(",", ":")))

    def _replay(self, key: Key, event: dict, rev: int) -> None:
        """A past change into the watch history only (the cache already holds its result)."""
        if event.get("type") == "DELETE":
            if not event.get("prev_kv"):
                return
            obj, _ = self._decode(key, event["prev_kv"], check_values=False)
            type = DELETED
        else:
            kv = event["kv"]
            obj, _ = self._decode(key, kv, check_values=False)
            type = ADDED if int(kv.get("create_revision", 0)) == rev else MODIFIED
        if obj is not None:
            obj["metadata"]["resourceVersion"] = str(rev)
            self._publish(type, key, obj, rev, json.dumps(obj, separators=(",", ":")))

    # ---- the write path ----------------------------------------------------------------

    async def _commit(self, type: str, key: Key, obj: dict, durable: bool) -> dict:
        self._check_identity(obj, key)
        decided_on = obj["metadata"].get("resourceVersion")
        if type == ADDED:
            compare = {"key": b64(etcd_key(key)), "target": "CREATE", "result": "EQUAL",
                       "create_revision": 0}
        else:
            compare = {"key": b64(etcd_key(key)), "target": "MOD", "result": "EQUAL",
                       "mod_revision": int(decided_on or 0)}
        put = {"request_put": {"key": b64(etcd_key(key)), "value": _encode(obj)}}
        rev = await self._transaction(compare, put)
        stored = clone(obj)
        stored["metadata"]["resourceVersion"] = str(rev)
        return stored

    async def _remove(self, key: Key, obj: dict, durable: bool) -> dict:
        compare = {"key": b64(etcd_key(key)), "target": "MOD", "result": "EQUAL",
                   "mod_revision": int(obj["metadata"].get("resourceVersion") or 0)}
        delete = {"request_delete_range": {"key": b64(etcd_key(key))}}
        rev = await self._transaction(compare, delete)
        removed = clone(obj)
        removed["metadata"]["resourceVersion"] = str(rev)
        return removed

    async def _transaction(self, compare: dict, request: dict) -> int:
        """Run one compare-and-write; its revision, once the cache has seen it."""
        response = await self.client.txn([compare], [request])
        rev = revision(response)
        if not await self.wait_for_resource_version(rev, CATCH_UP_SECONDS):
            raise StoreUnavailable(
                f"etcd {'committed' if response.get('succeeded') else 'answered'} at revision "
                f"{rev} but this server's watch of etcd has not caught up with it")
        if not response.get("succeeded"):
            raise StaleCache()
        return rev

    def set_aside(self, key: Key, backup_dir: Path | None = None) -> Path:
        raise StoreUnavailable(
            f"{'/'.join(key)}: `tinykube doctor --repair` works on the SQLite store only; on "
            f"etcd, save and delete the key {etcd_key(key).decode()} with etcdctl")
