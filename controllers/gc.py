"""The garbage collector: cascading deletion through ownerReferences, for every kind.

Kubernetes' three propagation policies, driven by what the store leaves behind:

- Background: the owner is removed at once; its dependents now point at a uid that no longer
  exists ("dangling"), and the collector deletes every dependent with no owner left.
- Foreground: the store keeps the owner with finalizer `foregroundDeletion`; the collector
  deletes its dependents (with Foreground themselves when they have blocking dependents of
  their own, so Deployment -> ReplicaSet -> Pods waits all the way down) and removes the
  finalizer once no dependent with `blockOwnerDeletion` remains; the store then removes it.
- Orphan: finalizer `orphan`; the collector removes the owner's references from its dependents
  and then the finalizer.

A dependent that still has another live owner is not deleted; only its references to the
dead or departing owners are removed. References to kinds tinykube does not know are never
taken as dangling.

`plan(objects, focus)` is the decision, pure: given a set of objects it returns the actions for
the `focus` uids. The running collector keeps a small graph (uid -> owners, owner -> dependents)
fed by watches of every kind; an event enqueues only the uids it can affect (the object itself,
its dependents when it goes away, owners it stopped referencing), and a status-only change
enqueues nothing, so pods reporting status cost the collector nothing. Processing a uid reads the
object, its owners and its dependents afresh from the store, plans, and applies the actions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from . import base
from .base import Requeue
from .workqueue import WorkQueue

from tinykube.model import meta
from tinykube.model.errors import NotFound
from tinykube.model.kinds import KINDS, find
from tinykube.model.meta import Obj

if TYPE_CHECKING:
    from tinykube.store import Store

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
# Every stored kind can own or be owned (Events are kept outside the object table).
GC_KINDS = tuple(k.kind for k in KINDS if k.kind != "Event")
RESYNC_SECONDS = 60.0

log = logging.getLogger("tinykube.controllers.garbagecollector")


# ---- actions (the plan's vocabulary) ------------------------------------------------------

@dataclass(frozen=True)
class ObjectRef:
    kind: str
    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, obj: Obj) -> ObjectRef:
        meta = obj["metadata"]
        return cls(obj["kind"], meta.get("namespace") or "default", meta["name"], meta["uid"])

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class Delete:
    target: ObjectRef
    propagation: str  # "Background" or "Foreground"
    reason: str = field(compare=False)  # for the log; two reasons to delete are one delete


@dataclass(frozen=True)
class RemoveOwnerRefs:
    target: ObjectRef
    owner_uids: frozenset[str]


@dataclass(frozen=True)
class RemoveFinalizer:
    target: ObjectRef
    finalizer: str


Action = Delete | RemoveOwnerRefs | RemoveFinalizer


# ---- the pure decision --------------------------------------------------------------------

def _refs(obj: Obj) -> list[Obj]:
    return base.owner_refs(obj)


def _finalizers(obj: Obj) -> list[str]:
    return list(obj["metadata"].get("finalizers") or [])


def _waiting_for_dependents(obj: Obj) -> bool:
    return meta.is_being_deleted(obj) and FOREGROUND in _finalizers(obj)


def plan(objects: Iterable[Obj], focus: Iterable[str] | None = None) -> list[Action]:
    """Actions for the objects whose uids are in `focus` (all when None).

    `objects` must hold, for each focus object: its live owners, and for a deleting owner,
    all its dependents with their owners and their own dependents. An owner uid missing from
    `objects` counts as gone."""
    world = _World(objects)
    focus_uids = list(world.objects) if focus is None else [
        u for u in focus if u in world.objects]
    actions: list[Action] = []
    for uid in focus_uids:
        actions += world.plan_for(world.objects[uid])
    return _dedup(actions)


class _World:
    """The objects `plan` sees, indexed by uid and by owner."""

    def __init__(self, objects: Iterable[Obj]) -> None:
        self.objects: dict[str, Obj] = {o["metadata"]["uid"]: o for o in objects}
        self.dependents: dict[str, list[Obj]] = {}
        for obj in self.objects.values():
            for ref in _refs(obj):
                self.dependents.setdefault(ref.get("uid", ""), []).append(obj)

    def plan_for(self, obj: Obj) -> list[Action]:
        if not meta.is_being_deleted(obj):
            return self._collect(obj)
        # A deleting object is never itself collected again; its finalizer says what to do.
        finalizers = _finalizers(obj)
        if ORPHAN in finalizers:
            return self._orphan_dependents(obj)
        if FOREGROUND in finalizers:
            return self._delete_dependents_first(obj)
        return []

    # -- an owner being deleted --------------------------------------------------------------
    def _orphan_dependents(self, owner: Obj) -> list[Action]:
        uid = owner["metadata"]["uid"]
        actions: list[Action] = [RemoveOwnerRefs(ObjectRef.of(d), frozenset({uid}))
                                 for d in self.dependents.get(uid, [])]
        return [*actions, RemoveFinalizer(ObjectRef.of(owner), ORPHAN)]

    def _delete_dependents_first(self, owner: Obj) -> list[Action]:
        uid, ref_owner = owner["metadata"]["uid"], ObjectRef.of(owner)
        actions: list[Action] = []
        still_blocking = False
        for dep in self.dependents.get(uid, []):
            states = self._owner_states(dep)
            if any(s == "solid" for u, s in states.items() if u != uid):
                # Another owner keeps it alive: just let go of it.
                gone = {u for u, s in states.items() if s != "solid"}
                actions.append(RemoveOwnerRefs(ObjectRef.of(dep), frozenset(gone)))
                continue
            if not meta.is_being_deleted(dep):
                actions.append(self._delete_waiting(
                    dep, f"owner {ref_owner} is deleted in the foreground"))
            still_blocking = still_blocking or _blocks(dep, uid)
        if not still_blocking:
            actions.append(RemoveFinalizer(ref_owner, FOREGROUND))
        return actions

    # -- a dependent whose owners may be gone --------------------------------------------------
    def _collect(self, obj: Obj) -> list[Action]:
        states = self._owner_states(obj)
        gone = {u for u, s in states.items() if s != "solid"}
        if not gone:
            return []
        ref_self = ObjectRef.of(obj)
        if len(gone) < len(states):
            return [RemoveOwnerRefs(ref_self, frozenset(u for u in gone if u))]
        if any(s == "waiting" for s in states.values()):
            return [self._delete_waiting(obj, "its owner is deleted in the foreground")]
        return [Delete(ref_self, "Background", "its owner no longer exists")]

    # -- facts -----------------------------------------------------------------------------------
    def _owner_states(self, obj: Obj) -> dict[str, str]:
        return {r.get("uid", ""): self._owner_state(r) for r in _refs(obj)}

    def _owner_state(self, ref: Obj) -> str:
        """solid, dangling (gone) or waiting (being deleted in the foreground)."""
        if find(str(ref.get("kind", ""))) is None:
            return "solid"  # unknown kind: we cannot tell, so never cascade on it
        owner = self.objects.get(ref.get("uid", ""))
        if owner is None or owner.get("kind") != ref.get("kind"):
            return "dangling"
        return "waiting" if _waiting_for_dependents(owner) else "solid"

    def _delete_waiting(self, obj: Obj, reason: str) -> Delete:
        # Kubernetes: a dependent of an owner deleted in the foreground is itself deleted in
        # the foreground when it has dependents, so the wait reaches all the way down.
        uid = obj["metadata"]["uid"]
        blocked = any(_blocks(d, uid) for d in self.dependents.get(uid, []))
        return Delete(ObjectRef.of(obj), "Foreground" if blocked else "Background", reason)


def _blocks(dependent: Obj, owner_uid: str) -> bool:
    """The dependent holds up its owner's foreground deletion (blockOwnerDeletion)."""
    return any(r.get("uid") == owner_uid and r.get("blockOwnerDeletion")
               for r in _refs(dependent))


def _dedup(actions: list[Action]) -> list[Action]:
    seen: set[Action] = set()
    unique = []
    for action in actions:
        if action not in seen:
            seen.add(action)
            unique.append(action)
    return unique


# ---- the graph: which uids an event can affect --------------------------------------------

@dataclass(frozen=True)
class Node:
    ref: ObjectRef
    owners: tuple[tuple[str, str, str], ...]  # (uid, kind, name)
    deleting: bool
    finalizers: tuple[str, ...]

    @classmethod
    def of(cls, obj: Obj) -> Node:
        owners = tuple((str(r.get("uid", "")), str(r.get("kind", "")), str(r.get("name", "")))
                       for r in _refs(obj))
        return cls(ObjectRef.of(obj), owners, meta.is_being_deleted(obj),
                   tuple(_finalizers(obj)))

    @property
    def needs_attention(self) -> bool:
        return bool(self.owners) or (self.deleting and bool(
            {FOREGROUND, ORPHAN} & set(self.finalizers)))


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    dependents: dict[str, set[str]] = field(default_factory=dict)

    def observe(self, event_type: str, obj: Obj) -> set[str]:
        """Record the event; return the uids whose decision it may change."""
        uid = obj["metadata"]["uid"]
        old = self.nodes.get(uid)
        if event_type == "DELETED":
            if old is None:
                return set()
            self._unlink(old)
            del self.nodes[uid]
            return set(self.dependents.get(uid, ())) | {o[0] for o in old.owners}
        new = Node.of(obj)
        if new == old:
            return set()  # status or spec change: nothing the collector cares about
        if old is not None:
            self._unlink(old)
        self.nodes[uid] = new
        for owner_uid, _, _ in new.owners:
            self.dependents.setdefault(owner_uid, set()).add(uid)
        affected = {uid} if new.needs_attention else set()
        if old is not None:
            affected |= {o[0] for o in old.owners} - {o[0] for o in new.owners}
        return affected

    def dangling_or_finalizing(self) -> list[str]:
        """Uids worth a periodic look: owners missing from the graph, or waiting finalizers."""
        return [uid for uid, node in self.nodes.items()
                if node.needs_attention and (node.deleting or any(
                    o[0] not in self.nodes for o in node.owners))]

    def _unlink(self, node: Node) -> None:
        for owner_uid, _, _ in node.owners:
            deps = self.dependents.get(owner_uid)
            if deps is not None:
                deps.discard(node.ref.uid)
                if not deps:
                    del self.dependents[owner_uid]


# ---- the actuator -------------------------------------------------------------------------

class GarbageCollector:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.graph = Graph()
        self.queue: WorkQueue[str] = WorkQueue()

    def _fresh(self, ref: ObjectRef) -> Obj | None:
        obj = self.store.try_get(ref.kind, ref.namespace, ref.name)
        return obj if obj is not None and obj["metadata"]["uid"] == ref.uid else None

    def _owners(self, obj: Obj) -> list[Obj]:
        namespace = obj["metadata"].get("namespace") or "default"
        found = []
        for ref in _refs(obj):
            info = find(str(ref.get("kind", "")))
            if info is None:
                continue
            # A cluster-scoped owner (a Node owning its Lease) sits under the store's `default`.
            where = namespace if info.namespaced else "default"
            owner = self.store.try_get(ref["kind"], where, ref.get("name", ""))
            if owner is not None and owner["metadata"]["uid"] == ref.get("uid"):
                found.append(owner)
        return found

    def _dependents(self, uid: str) -> list[Obj]:
        found = []
        for dep_uid in sorted(self.graph.dependents.get(uid, ())):
            node = self.graph.nodes.get(dep_uid)
            dep = self._fresh(node.ref) if node is not None else None
            if dep is not None and any(r.get("uid") == uid for r in _refs(dep)):
                found.append(dep)
        return found

    def neighbourhood(self, obj: Obj) -> list[Obj]:
        """What `plan` needs to decide about `obj`, read afresh from the store."""
        uid = obj["metadata"]["uid"]
        world = {uid: obj}
        for owner in self._owners(obj):
            world.setdefault(owner["metadata"]["uid"], owner)
        for dep in self._dependents(uid):
            world.setdefault(dep["metadata"]["uid"], dep)
            if meta.is_being_deleted(obj):
                for other in self._owners(dep):
                    world.setdefault(other["metadata"]["uid"], other)
            for grand in self._dependents(dep["metadata"]["uid"]):
                world.setdefault(grand["metadata"]["uid"], grand)
        return list(world.values())

    def _owner_unloadable(self, obj: Obj) -> bool:
        """Whether an owner of `obj` is a stored row the store could not load: it is not
        gone, so nothing is collected for it (see `tinykube doctor`)."""
        unloadable = getattr(self.store, "unloadable", None)
        if not unloadable:
            return False
        namespace = obj["metadata"].get("namespace") or "default"
        return any((ref.get("kind"), namespace, ref.get("name")) in unloadable
                   for ref in _refs(obj))

    async def process(self, store: Store, uid: str) -> Requeue | None:
        node = self.graph.nodes.get(uid)
        obj = self._fresh(node.ref) if node is not None else None
        if obj is None or self._owner_unloadable(obj):
            return None
        for action in plan(self.neighbourhood(obj), focus=[uid]):
            if not await self.apply(action):
                return Requeue(0.5)  # something appeared meanwhile: look again shortly
        return None

    async def apply(self, action: Action) -> bool:
        """Apply one action; False if it had to be postponed."""
        store, target = self.store, action.target
        if isinstance(action, Delete):
            log.info("deleting %s (%s, %s)", target, action.reason, action.propagation)
            try:
                await store.delete(target.kind, target.namespace, target.name, uid=target.uid,
                                   propagation="Foreground" if action.propagation == "Foreground"
                                   else None)
            except NotFound:
                pass
            return True
        current = self._fresh(target)
        if current is None:
            return True
        if isinstance(action, RemoveOwnerRefs):
            await base.remove_owner_refs(store, current, set(action.owner_uids))
            return True
        return await self._remove_finalizer(current, action.finalizer)

    async def _remove_finalizer(self, obj: Obj, finalizer: str) -> bool:
        uid = obj["metadata"]["uid"]
        # The graph may lag the store by a few events: check the real dependents before the
        # owner is allowed to go.
        remaining = self._scan_dependents(obj)
        if finalizer == ORPHAN:
            for dep in remaining:
                await base.remove_owner_refs(self.store, dep, {uid})
        elif any(any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in _refs(d))
                 for d in remaining):
            return False
        def drop(current: Obj) -> bool:
            if finalizer not in _finalizers(current):
                return False
            current["metadata"]["finalizers"] = [f for f in _finalizers(current) if f != finalizer]
            return True

        # The last finalizer's removal also removes the object, so "gone" counts as done.
        if await base.update_fresh(self.store, obj, drop, f"remove finalizer {finalizer}"):
            log.info("removed finalizer %s from %s", finalizer, ObjectRef.of(obj))
        return True

    def _scan_dependents(self, owner: Obj) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        info = find(owner["kind"])
        namespace = (owner["metadata"].get("namespace") or "default"
                     if info is None or info.namespaced else None)  # cluster-scoped: all
        return [obj for kind in GC_KINDS for obj in self.store.list(kind, namespace)
                if any(r.get("uid") == uid for r in _refs(obj))]

    def mapper(self, store: Store, event_type: str, obj: Obj) -> Iterable[str]:
        return self.graph.observe(event_type, obj)

    async def resync(self) -> None:
        while True:
            await trio.sleep(RESYNC_SECONDS)
            for uid in self.graph.dangling_or_finalizing():
                self.queue.add(uid)

    async def run(self, *, workers: int = 2,
                  task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for kind in GC_KINDS:
                await nursery.start(base.watch_kind, self.store, kind, self.mapper, self.queue,
                                    log)
            for _ in range(workers):
                nursery.start_soon(base.work, self.store, self.queue, self.process, log,
                                   "garbage collection of")
            nursery.start_soon(self.resync)
            task_status.started(self)


async def run(store: Store, *,
              task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the garbage collector until cancelled."""
    await GarbageCollector(store).run(task_status=task_status)
