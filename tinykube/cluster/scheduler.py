"""The scheduler: binds each unbound Pod to a node (tinykube/cluster/placement.py decides).

Runs in `tinykube server` on the leader. It follows Pods and Nodes through the store's watch;
any change wakes one scheduling round over every pending pod (oldest first), and a round also
runs every few seconds, since a node can become able to take a pod without an event about the
pod. A bind is the `pods/binding` write (tinykube/api/binding.py); before it, the pod's claims
that no node holds yet are given the chosen node (a local volume lives where it first ran). A
pod that fits nowhere gets PodScheduled=False/Unschedulable with kube-scheduler's message.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import trio

from . import placement

from tinykube.api import binding
from tinykube.model.errors import ApiError, Conflict, NotFound
from tinykube.model.meta import now_iso

log = logging.getLogger("tinykube.cluster.scheduler")
RESYNC_SECONDS = 5.0


class Scheduler:
    def __init__(self, store: Any, *, resync_seconds: float = RESYNC_SECONDS) -> None:
        self.store = store
        self.resync_seconds = resync_seconds
        self._wake = trio.Event()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        since = self.store.resource_version
        with self.store.watch("Pod", since=since) as pods, \
                self.store.watch("Node", since=since) as nodes:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._follow, pods)
                nursery.start_soon(self._follow, nodes)
                task_status.started()
                while True:
                    self._wake = trio.Event()
                    try:
                        await self.schedule_pending()
                    except ApiError as e:
                        log.warning("scheduling round failed: %s", e)
                    with trio.move_on_after(self.resync_seconds):
                        await self._wake.wait()

    async def _follow(self, events: Any) -> None:
        async for _ in events:
            self._wake.set()

    async def schedule_pending(self) -> None:
        pods = self.store.list("Pod")
        pending = sorted((p for p in pods if _pending(p)),
                         key=lambda p: (p["metadata"].get("creationTimestamp") or "",
                                        p["metadata"]["name"]))
        if not pending:
            return
        nodes = self.store.list("Node")
        loads = placement.loads(pods)
        claims = {(c["metadata"]["namespace"], c["metadata"]["name"]): c
                  for c in self.store.list("PersistentVolumeClaim")}
        for pod in pending:
            decision = placement.choose(pod, nodes, loads, claims)
            if decision.node is None:
                await self._unschedulable(pod, decision.message(len(nodes)))
                continue
            try:
                bound = await self.bind(pod, decision.node, claims)
            except (Conflict, NotFound):
                continue  # changed or gone meanwhile: the next round sees it afresh
            loads.setdefault(decision.node, placement.NodeLoad()).add(bound)

    async def bind(self, pod: dict, node: str, claims: dict[tuple[str, str], dict]) -> dict:
        namespace = pod["metadata"]["namespace"]
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            claim = claims.get((namespace, str(name))) if name else None
            if claim is None:
                continue
            annotations = claim["metadata"].get("annotations") or {}
            if annotations.get(placement.SELECTED_NODE):
                continue
            claim = copy.deepcopy(claim)
            claim["metadata"].setdefault("annotations", {})[placement.SELECTED_NODE] = node
            claims[(namespace, str(name))] = await self.store.update(claim, durable=True)
        new = binding.bound(pod, {"kind": "Binding", "target": {"kind": "Node", "name": node}})
        bound = await self.store.update(new, durable=True)
        log.debug("pod %s/%s bound to %s", namespace, pod["metadata"]["name"], node)
        return bound

    async def _unschedulable(self, pod: dict, message: str) -> None:
        status = copy.deepcopy(pod.get("status") or {})
        conditions = status.get("conditions") or []
        old = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        if old and old.get("status") == "False" and old.get("message") == message:
            return
        status["phase"] = status.get("phase") or "Pending"
        status["conditions"] = [c for c in conditions if c.get("type") != "PodScheduled"] + [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": message, "lastTransitionTime": now_iso()}]
        new = copy.deepcopy(pod)
        new["status"] = status
        try:
            await self.store.update_status(new, durable=True)
            await self.store.record_event(pod, "Warning", "FailedScheduling", message)
        except (Conflict, NotFound):
            pass


def _pending(pod: dict) -> bool:
    return (not (pod.get("spec") or {}).get("nodeName")
            and not pod["metadata"].get("deletionTimestamp")
            and placement.occupies_node(pod))
