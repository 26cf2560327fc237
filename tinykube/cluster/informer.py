"""A store-shaped view of the API for the agent's kubelet: list + watch through the API
server, kept in a local cache, with writes going back through the API.

The kubelet (runtime/kubelet.py) and its pod workers were written against the daemon's
Store: `list`, `try_get`, `get`, `watch(kind, since=…)`, `resource_version`, `update_status`,
`delete`, `record_event`. `ApiStore` offers exactly those, so an agent runs the same
kubelet unchanged — the seam the design card asks for: the node talks to the control plane
only through the API. Each kind is listed, then watched from the listed resourceVersion;
a broken watch resumes from the last version seen, and an expired one (410) is relisted,
its differences delivered as events.
"""

from __future__ import annotations

import copy
import http.client
import logging
import math
from typing import Any

import trio

from .apiclient import ApiObjects

from tinykube.client import DaemonUnreachable, collection_path
from tinykube.model.errors import ApiError, Gone, NotFound
from tinykube.model.kinds import by_kind
from tinykube.store.base import Watch, WatchEvent

log = logging.getLogger("tinykube.cluster.informer")
Key = tuple[str, str]  # (namespace, name)
RETRY_SECONDS = 1.0
EVENT_QUEUE = 1000  # events waiting for the API (the kubelet's broadcaster keeps 1000)
EVENT_ATTEMPTS = 5


class ApiStore:
    def __init__(self, objects: ApiObjects, kinds: tuple[str, ...]) -> None:
        self.objects = objects
        self.kinds = kinds
        self._cache: dict[str, dict[Key, dict[str, Any]]] = {k: {} for k in kinds}
        self._watches: set[Watch] = set()
        self._rv = 0
        self._latest: dict[str, str] = {}  # kind -> the last resourceVersion its watch saw
        self.unloadable: dict = {}  # the kubelet asks; the server's problem, not ours
        self.host = ""  # the node name, the events' source.host
        self._events_out, self._events_in = trio.open_memory_channel[dict](EVENT_QUEUE)

    # ---- reads (the local cache) -----------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def list(self, kind: str, namespace: str | None = None, **_: Any) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (ns, _name), o in sorted(self._cache[kind].items())
                if namespace is None or ns == namespace]

    def try_get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self._cache[kind].get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self.try_get(kind, namespace, name)
        if obj is None:
            raise NotFound.for_object(kind, name)
        return obj

    def watch(self, kind: str, namespace: str | None = None, since: int | None = None
              ) -> Watch:
        # The store's own Watch: the kubelet reads the same iterator, with its copy-on-read
        # and its end when closed. Cached objects are replaced, never changed in place.
        watch = Watch(self, kind, namespace)  # type: ignore[arg-type]
        self._watches.add(watch)
        return watch

    # ---- writes (the API) ------------------------------------------------------------------
    async def update_status(self, obj: dict[str, Any], *, durable: bool = False) -> dict:
        return await self.objects.update_status(obj)

    async def delete(self, kind: str, namespace: str, name: str, *,
                     grace_period: int | None = None, uid: str | None = None,
                     **_: Any) -> Any:
        return await self.objects.delete(kind, namespace, name, grace_period=grace_period,
                                         uid=uid)

    async def record_event(self, obj: dict, type: str, reason: str, message: str, *,
                           source: str = "kubelet") -> None:
        """Queue the event for the API (POST .../events), as the kubelet's event broadcaster
        does: a pod's work never waits for it, and when the queue is full it is dropped."""
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        event = {"apiVersion": "v1", "kind": "Event",
                 "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
                 "involvedObject": {"kind": obj.get("kind"), "apiVersion": obj.get("apiVersion"),
                                    "namespace": namespace, "name": meta["name"],
                                    "uid": meta.get("uid")},
                 "type": type, "reason": reason, "message": message,
                 "source": {"component": source, "host": self.host}}
        try:
            self._events_out.send_nowait(event)
        except trio.WouldBlock:
            log.warning("event queue full: dropped %s %s/%s %s", obj.get("kind"), namespace,
                        meta["name"], reason)

    async def _post_events(self) -> None:
        async for event in self._events_in:
            path = collection_path(by_kind("Event"), event["metadata"]["namespace"])
            for _ in range(EVENT_ATTEMPTS):
                try:
                    await self.objects.call("POST", path, event)
                    break
                except (ApiError, DaemonUnreachable, OSError) as e:
                    if isinstance(e, ApiError) and e.code < 500:
                        log.warning("event %s refused: %s", event["reason"], e)
                        break
                    await trio.sleep(RETRY_SECONDS)

    # ---- keeping the cache -----------------------------------------------------------------
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """List every kind (then report started), and follow each kind's watch forever."""
        versions = {}
        for kind in self.kinds:
            versions[kind] = await self._relist(kind, initial=True)
        task_status.started()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._post_events)
            for kind in self.kinds:
                nursery.start_soon(self._follow, kind, versions[kind])

    async def _relist(self, kind: str, initial: bool = False) -> str:
        while True:
            try:
                listed = await self.objects.call("GET", collection_path(by_kind(kind), None))
                break
            except (ApiError, DaemonUnreachable, OSError) as e:
                log.warning("listing %s: %s; retrying", kind, e)
                await trio.sleep(RETRY_SECONDS)
        rv = listed["metadata"].get("resourceVersion") or "0"
        fresh = {_key(o): {**o, "kind": kind, "apiVersion": by_kind(kind).api_version}
                 for o in listed["items"]}
        old = self._cache[kind]
        self._cache[kind] = fresh
        self._note_rv(rv)
        if not initial:
            for key, obj in old.items():
                if key not in fresh:
                    self._deliver(kind, "DELETED", obj)
            for key, obj in fresh.items():
                if old.get(key) != obj:
                    self._deliver(kind, "MODIFIED" if key in old else "ADDED", obj)
        return rv

    async def _follow(self, kind: str, rv: str) -> None:
        while True:
            outcome = await self._watch_once(kind, rv)
            if isinstance(outcome, Gone):
                rv = await self._relist(kind)
                continue
            if outcome is not None:
                log.warning("watching %s: %s; resuming", kind, outcome)
                await trio.sleep(RETRY_SECONDS)
            rv = self._latest.get(kind, rv)

    async def _watch_once(self, kind: str, rv: str) -> Exception | None:
        """Apply one watch stream's events until it ends; what ended it (None: the server
        closed it, as after its timeout)."""
        send, receive = trio.open_memory_channel[Any](math.inf)
        outcome: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._stream, kind, rv, send)
            async with receive:
                async for item in receive:
                    if isinstance(item, Exception):
                        outcome = item
                        break
                    outcome = self._apply(kind, item)
                    if outcome is not None:
                        break
            nursery.cancel_scope.cancel()
        return outcome

    async def _stream(self, kind: str, rv: str, send: Any) -> None:
        token = trio.lowlevel.current_trio_token()
        path = collection_path(by_kind(kind), None)

        def read() -> None:
            client = self.objects.make_client()
            try:
                for line in client.stream_lines("GET", path, params={
                        "watch": "true", "resourceVersion": rv}):
                    trio.from_thread.run_sync(send.send_nowait, line, trio_token=token)
            except (DaemonUnreachable, http.client.HTTPException, OSError) as e:
                # The server went away mid-stream (IncompleteRead) or cannot be reached.
                self.objects.failed(client)
                trio.from_thread.run_sync(send.send_nowait, e, trio_token=token)
            except (ApiError, ValueError) as e:
                trio.from_thread.run_sync(send.send_nowait, e, trio_token=token)
            finally:
                client.close()
        async with send:
            await trio.to_thread.run_sync(read, abandon_on_cancel=True)

    def _apply(self, kind: str, line: dict[str, Any]) -> Exception | None:
        """Apply one watch event to the cache and deliver it; an ERROR event is returned."""
        type_, obj = line.get("type"), line.get("object") or {}
        if type_ == "ERROR":
            if obj.get("code") == 410:
                return Gone(obj.get("message") or "too old resource version")
            return ApiError(obj.get("message") or "watch error", code=obj.get("code") or 500)
        rv = obj.get("metadata", {}).get("resourceVersion")
        if rv:
            self._latest[kind] = rv
            self._note_rv(rv)
        if type_ == "BOOKMARK":
            return None
        key = _key(obj)
        if type_ == "DELETED":
            self._cache[kind].pop(key, None)
        else:
            self._cache[kind][key] = obj
        self._deliver(kind, str(type_), obj)
        return None

    def _deliver(self, kind: str, type_: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        try:
            rv = int(meta.get("resourceVersion") or 0)
        except ValueError:
            rv = 0
        event = WatchEvent(type_, obj, rv)
        for watch in list(self._watches):
            if watch.wants(kind, namespace):
                watch.deliver(event)

    def _note_rv(self, rv: str) -> None:
        try:
            self._rv = max(self._rv, int(rv))
        except ValueError:
            pass  # an opaque version (etcd's are numbers too; nothing else is expected)


def _key(obj: dict[str, Any]) -> Key:
    meta = obj["metadata"]
    return (meta.get("namespace") or "default", meta["name"])
