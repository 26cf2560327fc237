"""The kubelet: one pod worker per Pod uid, driven by the store's watch.

`run` lists the Pods, registers a watch at the listed resourceVersion (so nothing is missed),
re-adopts what a previous daemon left running (`restore`), and from then on routes every
watch event to the worker of the pod's uid, starting a worker for a new uid. Workers write
status themselves and remove the Pod from the store once its processes are gone.

Besides supervision the kubelet keeps the /etc/hosts of pods that share a `spec.subdomain`
in a namespace listing each other (a headless service's DNS, for StatefulSet peers): when a
pod of such a group gets or gives back its address, the others' files are rewritten in
place. It also serves the API server's `exec` and `logs`.

Live restore: pod records (runtime/layout.py) name the pause and container processes a
previous daemon started. A record whose pod still exists resumes (the worker re-adopts a
pause that is still the same process and reads exited containers' codes from the shims'
exit files); a record, cgroup, veth or pod dir whose pod is gone is torn down.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from . import layout, logfiles, records
from .backoff import DEFAULT_POLICY, BackoffPolicy
from .cgroups import CgroupDriver
from .claims import ClaimDirectories
from .configwatch import ConfigWatch
from .hostsfile import HostEntry
from .node import NodeContext
from .podworker import Phase, PodWorker
from .probes import NetnsSockets
from .sandbox import SpawnError
from .storemark import StoreMark
from .warmpool import WarmPool, is_pool_uid

from tinykube.model.errors import BadRequest

if TYPE_CHECKING:
    from tinykube.netns.podnet import PodNetwork
    from tinykube.store import Store
    from tinykube.store.base import WatchEvent

log = logging.getLogger("tinykube.runtime.kubelet")
WORKER_RETRY_SECONDS = 1.0  # before a failed pod worker is started again

# A run's log, current or rotated: between tk-shim's rename and its new file only the
# rotated one exists, and the run still has a log.
_LOG_NAME = re.compile(r"^(\d+)\.log(?:\.\d+)?$")


class Kubelet:
    def __init__(self, store: Store, root: Path, run_dir: Path, network: PodNetwork,
                 cgroups: CgroupDriver, *, backoff_policy: BackoffPolicy = DEFAULT_POLICY,
                 hidden_paths: tuple[str, ...] = (),
                 cluster_dns: str | None = None,
                 log_max_bytes: int = logfiles.DEFAULT_MAX_BYTES,
                 log_max_files: int = logfiles.DEFAULT_MAX_FILES,
                 warm_sandboxes: int = 0,
                 node_name: str | None = None, run_unbound: bool = True) -> None:
        self.store = store
        # Which pods are this node's: bound to it (spec.nodeName), and in the all-in-one
        # daemon also those no scheduler bound (the one node runs them without waiting).
        self.node_name = node_name
        self.run_unbound = run_unbound
        # Containers never see the daemon's state: its root and run dir at least.
        hidden = tuple(dict.fromkeys(os.path.realpath(os.fspath(p))
                                     for p in (str(root), str(run_dir), *hidden_paths)))
        self.ctx = NodeContext(store=store, root=Path(root), run_dir=Path(run_dir),
                               network=network, cgroups=cgroups, sockets=NetnsSockets(),
                               backoff_policy=backoff_policy, hidden_paths=hidden,
                               cluster_dns=cluster_dns,
                               hosts_peers=self._hosts_peers,
                               address_changed=self._address_changed,
                               log_max_bytes=log_max_bytes, log_max_files=log_max_files)
        # A warm sandbox is handed over by renaming its pod cgroup, which cgroup v2 cannot do.
        if warm_sandboxes and cgroups.renames_pods:
            self.ctx.warm_pool = WarmPool(warm_sandboxes, cgroups, network, Path(run_dir))
        self.workers: dict[str, PodWorker] = {}
        self._groups: dict[tuple[str, str], set[str]] = {}  # (namespace, subdomain) -> uids
        self._nursery: trio.Nursery | None = None
        self._mark = StoreMark(self.ctx.run_dir, self.ctx.root,
                               lambda: self.store.resource_version)
        self.ctx.cover_store_version = self._mark.cover
        # Pods whose worker finished (everything torn down) but whose object a finalizer still
        # keeps: no new worker for them until the DELETED event (the kubelet's "finished").
        self._finished: set[str] = set()

    # -- supervision --------------------------------------------------------------------------
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        layout.records_dir(self.ctx.run_dir).mkdir(parents=True, exist_ok=True)
        layout.pods_dir(self.ctx.root).mkdir(parents=True, exist_ok=True)
        await self.ctx.network.ensure_bridge()
        self._mark.write_now()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                # Claim directories go with their PersistentVolumeClaims (runtime/claims.py).
                await nursery.start(ClaimDirectories(self.store, self.ctx.root).run)
                # configMap/secret/downwardAPI volumes follow their sources.
                config_watch = ConfigWatch(self.store, self.workers.values)
                await nursery.start(config_watch.run)
                pods = self.store.list("Pod")
                watch = self.store.watch("Pod", since=self.store.resource_version)
                with watch:
                    found = await self.restore(pods)
                    for pod in pods:
                        await self._observe(pod, found)
                    if self.ctx.warm_pool is not None:  # after restore: it sweeps old ones
                        await nursery.start(self.ctx.warm_pool.run)
                    task_status.started()
                    while True:
                        try:  # the whole backlog in one pass (see Watch.ready_nowait)
                            batch = await watch.receive_batch()
                        except StopAsyncIteration:
                            break
                        for event in batch:
                            await self._route(event, config_watch)
        finally:
            self._nursery = None
            self.ctx.sockets.close()

    async def _route(self, event: WatchEvent, config_watch: ConfigWatch) -> None:
        """One watch event to the worker of its pod (a new one for a new pod)."""
        if event.type == "DELETED":
            config_watch.pod_gone(event.object["metadata"]["uid"])
            self._finished.discard(event.object["metadata"]["uid"])
            worker = self.workers.get(event.object["metadata"]["uid"])
            if worker is not None:
                worker.forget()
        else:
            await self._observe(event.object)
            config_watch.pod_changed(event.object)

    async def _observe(self, pod: dict[str, Any],
                       found: dict[str, records.PodRecord] | None = None) -> None:
        """Start or update the pod's worker; `found`: the records the restore has just read
        (each is read once at start, not twice; a pod missing there reads its own)."""
        meta = pod["metadata"]
        worker = self.workers.get(meta["uid"])
        if worker is not None:
            worker.observe(pod)
            return
        if meta["uid"] in self._finished:
            return  # torn down and removed; a finalizer keeps the object: nothing to run
        if not self.is_mine(pod):
            return
        # A late event for a pod whose worker already removed it must not start a new one.
        current = self.store.try_get("Pod", meta.get("namespace") or "default", meta["name"])
        if current is None or current["metadata"]["uid"] != meta["uid"]:
            return
        record = found.get(meta["uid"]) if found else None
        if record is None:
            record = records.read_record(self.ctx.run_dir, meta["uid"])
        worker = PodWorker(self.ctx, current, record)
        self.workers[worker.uid] = worker
        if worker.subdomain:
            self._groups.setdefault((worker.namespace, worker.subdomain), set()).add(worker.uid)
        assert self._nursery is not None
        # start_soon, not start: PodWorker.run reports started at once, so waiting for it
        # only cost the event loop a trip through the run queue per new pod, with the pods
        # of a burst queued behind each other.
        self._nursery.start_soon(self._run_worker, worker)

    def is_mine(self, pod: dict[str, Any]) -> bool:
        bound_to = (pod.get("spec") or {}).get("nodeName")
        if not bound_to:
            return self.run_unbound
        return self.node_name is None or bound_to == self.node_name

    async def _run_worker(self, worker: PodWorker, *,
                          task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        failed = False
        try:
            await worker.run(task_status=task_status)
        except Exception:
            failed = True
            log.exception("pod %s/%s: worker failed", worker.namespace, worker.name)
        finally:
            if self.workers.get(worker.uid) is worker:
                del self.workers[worker.uid]
            if worker.phase is Phase.DONE:
                self._finished.add(worker.uid)
            if worker.subdomain:
                group = self._groups.get((worker.namespace, worker.subdomain), set())
                group.discard(worker.uid)
                if not group:
                    self._groups.pop((worker.namespace, worker.subdomain), None)
        if failed:
            # Supervise the supervisor: a fresh worker resumes from the record. Waiting for the
            # pod's next event is not enough, since a pod being deleted may never get one.
            await trio.sleep(WORKER_RETRY_SECONDS)
            pod = self.store.try_get("Pod", worker.namespace, worker.name)
            if pod is not None and pod["metadata"]["uid"] == worker.uid:
                await self._observe(pod)

    # -- live restore -------------------------------------------------------------------------
    async def restore(self, pods: list[dict[str, Any]]) -> dict[str, records.PodRecord]:
        """Tear down what a previous daemon left for pods that no longer exist; pods that do
        exist resume from their records when their workers start (see PodWorker). Returns
        the readable records of the pods that exist, by uid."""
        live = {pod["metadata"]["uid"] for pod in pods}
        # A pod whose stored object could not be loaded is not gone: leave it alone (neither
        # adopted nor torn down) until `tinykube doctor` has dealt with its row.
        unloadable = {(ns, name) for kind, ns, name in getattr(self.store, "unloadable", {})
                      if kind == "Pod"}
        orphans: dict[str, records.PodRecord | None] = {}
        found: dict[str, records.PodRecord] = {}
        for record in records.list_records(self.ctx.run_dir):
            if (record.namespace, record.name) in unloadable:
                log.warning("pod %s/%s: its stored object cannot be loaded; leaving its "
                            "processes alone (see `tinykube doctor`)", record.namespace,
                            record.name)
                live.add(record.uid)
            elif record.uid not in live:
                orphans[record.uid] = record
            else:
                found[record.uid] = record
        try:
            cgroup_uids = await trio.to_thread.run_sync(self.ctx.cgroups.pod_uids)
        except OSError as e:
            log.warning("listing pod cgroups: %s", e)
            cgroup_uids = set()
        for uid in cgroup_uids - live:
            orphans.setdefault(uid, None)
        pods_dir = layout.pods_dir(self.ctx.root)
        for entry in pods_dir.iterdir() if pods_dir.is_dir() else []:
            if entry.is_dir() and entry.name not in live:
                orphans.setdefault(entry.name, None)
        for uid, orphan in orphans.items():
            if is_pool_uid(uid):
                log.info("discarding warm sandbox %s of a previous daemon", uid)
            else:
                log.info("removing leftovers of pod %s: it no longer exists", uid)
            await self.teardown_orphan(uid, orphan)
        for line in await self.ctx.network.sweep(live):
            log.info("%s", line)
        return found

    async def teardown_orphan(self, uid: str, record: records.PodRecord | None) -> None:
        known = record or records.PodRecord(uid, "default", uid)
        stub = {"metadata": {"uid": uid, "name": known.name, "namespace": known.namespace},
                "spec": {}}
        try:
            await PodWorker(self.ctx, stub, known).teardown()
        except (OSError, ValueError) as e:
            log.warning("removing leftovers of pod %s: %s", uid, e)

    # -- subdomain peers' /etc/hosts ----------------------------------------------------------
    def _hosts_peers(self, worker: PodWorker) -> list[HostEntry]:
        if not worker.subdomain:
            return []
        peers = []
        for uid in self._groups.get((worker.namespace, worker.subdomain), ()):
            other = self.workers.get(uid)
            if other is not None and other is not worker:
                entry = other.hosts_entry()
                if entry is not None:
                    peers.append(entry)
        return peers

    def _address_changed(self, worker: PodWorker) -> None:
        if not worker.subdomain:
            return
        for uid in list(self._groups.get((worker.namespace, worker.subdomain), ())):
            other = self.workers.get(uid)
            if other is not None and other is not worker:
                try:
                    other.write_hosts()
                except OSError as e:
                    log.warning("pod %s: rewriting /etc/hosts: %s", uid, e)

    # -- for the API server ---------------------------------------------------------------------
    async def exec_in_pod(self, namespace: str, name: str, container: str | None,
                          argv: list[str]) -> trio.Process:
        pod = self.store.get("Pod", namespace, name)
        worker = self.workers.get(pod["metadata"]["uid"])
        if worker is None:
            raise BadRequest(f'pod "{name}" is not running on this node')
        try:
            return await worker.exec(container, argv)
        except SpawnError as e:
            raise BadRequest(f"unable to exec in pod {namespace}/{name}: {e}") from None

    def log_path(self, pod: dict[str, Any], container: str, previous: bool = False
                 ) -> Path | None:
        """The container's current log (or the previous run's), None if there is none."""
        try:
            directory = layout.logs_dir(self.ctx.root, pod["metadata"].get("uid"), container)
        except layout.UnsafeName:
            return None
        try:
            runs = sorted(int(m.group(1)) for m in
                          (_LOG_NAME.match(p.name) for p in directory.iterdir()) if m)
        except FileNotFoundError:
            return None
        current = None
        status = pod.get("status") or {}
        for cs in [*(status.get("containerStatuses") or []),
                   *(status.get("initContainerStatuses") or [])]:
            if cs.get("name") == container:
                current = cs.get("restartCount")
        if current not in runs:
            current = runs[-1] if runs else None
        if current is None:
            return None
        if not previous:
            return layout.log_file(self.ctx.root, pod["metadata"]["uid"], container, current)
        older = [n for n in runs if n < current]
        return (layout.log_file(self.ctx.root, pod["metadata"]["uid"], container, older[-1])
                if older else None)
