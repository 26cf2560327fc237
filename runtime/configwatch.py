"""ConfigMap, Secret and downward-API volumes follow their sources, as the kubelet's do.

One task per node watches ConfigMaps and Secrets; the kubelet forwards its Pod events
(`pod_changed`). A change to a ConfigMap or Secret rewrites (atomic writer) every running
pod's volume that reads it; a change to a Pod's labels or annotations rewrites its
downwardAPI volumes. It also wakes pod workers that wait for a missing ConfigMap or Secret,
so a pod starts as soon as what it needs exists. A source that is gone leaves the files as
they are (as the kubelet does).

Volumes are rewritten one at a time (a lock), in a worker thread.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import trio

from . import atomicwriter, projection
from .envresolve import referenced as env_referenced
from .projection import Lookup

from tinykube.model.schema import PROJECTED_SOURCES

if TYPE_CHECKING:
    from pathlib import Path

    from tinykube.store import Store

log = logging.getLogger("tinykube.runtime.configwatch")
KINDS = ("ConfigMap", "Secret")


class Worker(Protocol):
    pod: dict[str, Any]
    namespace: str
    volume_paths: dict[str, Path]

    def inputs_changed(self) -> None: ...


def lookup_in(store: Store, namespace: str) -> Lookup:
    """Lookup of a namespace's ConfigMaps and Secrets in the store (call from trio)."""
    def lookup(kind: str, name: str) -> dict[str, Any] | None:
        return store.try_get(kind, namespace, name)
    return lookup


def snapshot(store: Store, pod: dict[str, Any]) -> Lookup:
    """The objects the pod's volumes read, fetched now (in trio), for use in a thread."""
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    wanted: set[tuple[str, str]] = set()
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        wanted |= projection.referenced(volume)
    found = {key: store.try_get(key[0], namespace, key[1]) for key in wanted}

    def lookup(kind: str, name: str) -> dict[str, Any] | None:
        return found.get((kind, name))
    return lookup


class ConfigWatch:
    def __init__(self, store: Store, workers: Callable[[], Iterable[Worker]]) -> None:
        self.store = store
        self.workers = workers
        self._lock = trio.Lock()
        # uid -> (labels, annotations) last seen, so status-only Pod events cost nothing
        self._pod_metadata: dict[str, tuple[Any, Any]] = {}
        # Pods whose labels/annotations changed, from the kubelet's own Pod watch.
        self._pods_send, self._pods_receive = trio.open_memory_channel[dict[str, Any]](
            math.inf)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        since = self.store.resource_version
        async with trio.open_nursery() as nursery:
            for kind in KINDS:
                nursery.start_soon(self._follow, kind, since)
            nursery.start_soon(self._follow_pods)
            task_status.started()

    def pod_changed(self, pod: dict[str, Any]) -> None:
        """A Pod event (the kubelet forwards its watch; no second Pod watch). Cheap for
        pods without downwardAPI files and for events that change no label/annotation."""
        meta = pod.get("metadata") or {}
        volumes_ = (pod.get("spec") or {}).get("volumes") or []
        if not any(projection.uses_pod_metadata(v) for v in volumes_):
            return
        uid, seen = meta.get("uid") or "", (meta.get("labels"), meta.get("annotations"))
        if self._pod_metadata.get(uid) == seen:
            return
        self._pod_metadata[uid] = seen
        self._pods_send.send_nowait(pod)

    def pod_gone(self, uid: str) -> None:
        self._pod_metadata.pop(uid, None)

    async def _follow_pods(self) -> None:
        async for pod in self._pods_receive:
            uid = pod["metadata"].get("uid") or ""
            worker = next((w for w in list(self.workers())
                           if w.pod["metadata"].get("uid") == uid), None)
            if worker is None or not worker.volume_paths:
                # Not set up yet (its set-up may read older labels): the next event of this
                # pod (its status once running) tries again.
                self._pod_metadata.pop(uid, None)
                continue
            # The worker may not have this version yet: use the event's.
            await self._refresh(worker, projection.uses_pod_metadata, pod)

    async def _follow(self, kind: str, since: int) -> None:
        with self.store.watch(kind, since=since) as watch:
            async for event in watch:
                meta = event.object.get("metadata") or {}
                namespace = meta.get("namespace") or "default"
                key = (kind, meta.get("name", ""))

                def reads_it(volume: dict[str, Any], key: tuple[str, str] = key) -> bool:
                    return key in projection.referenced(volume)
                for worker in list(self.workers()):
                    if worker.namespace == namespace and _reads(worker.pod, key):
                        worker.inputs_changed()
                        await self._refresh(worker, reads_it)

    async def _refresh(self, worker: Worker, wanted: Callable[[dict[str, Any]], bool],
                       pod: dict[str, Any] | None = None) -> None:
        pod = pod or worker.pod
        lookup = lookup_in(self.store, worker.namespace)
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            path = worker.volume_paths.get(volume.get("name"))
            if path is None or not wanted(volume) or not any(
                    volume.get(s) is not None for s in PROJECTED_SOURCES):
                continue
            try:
                files = projection.payload(volume, pod, lookup)
            except projection.MissingSource as e:
                log.info("pod %s/%s: volume %s keeps its files: %s", worker.namespace,
                         pod["metadata"].get("name"), volume.get("name"), e)
                continue
            async with self._lock:
                try:
                    await trio.to_thread.run_sync(atomicwriter.write, path, files,
                                                  projection.fs_group(pod))
                except OSError as e:
                    log.warning("pod %s/%s: updating volume %s: %s", worker.namespace,
                                pod["metadata"].get("name"), volume.get("name"), e)


def _reads(pod: dict[str, Any], key: tuple[str, str]) -> bool:
    spec = pod.get("spec") or {}
    if any(key in projection.referenced(v) for v in spec.get("volumes") or []):
        return True
    return any(key in env_referenced(c)
               for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])])
