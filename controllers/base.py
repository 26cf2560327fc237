"""Shared controller plumbing: the run loop, owner references, adoption, pods from templates.

A controller is a `ControllerSpec`: a primary kind, the other kinds it watches with a function
mapping each of their watch events to primary keys, and `reconcile(store, key)`. `run_controller`
lists + watches every kind (re-listing after `Gone`), feeds keys `(namespace, name)` into a
`WorkQueue`, resyncs every primary key periodically (level-triggered: a missed event costs
latency, never correctness), and runs a few workers. One place maps reconcile outcomes to
queue actions, like controller-runtime: `None` -> done (forget the failure count),
`Requeue(after)` -> re-check later, an exception -> rate-limited retry (a `Conflict` quietly,
anything else logged with its traceback once per key and error: a spec that makes a
reconcile fail keeps being retried with back-off, and the log says so once, not every second).

Ownership follows Kubernetes' ControllerRefManager: a dependent has at most one owner reference
with `controller: true`; a controller adopts matching orphans by adding its reference and
releases owned objects that stopped matching by removing it, re-reading on conflicts and never
touching what another controller owns. The store reads are consistent (no informer cache), so
unlike Kubernetes no "expectations" bookkeeping is needed: a reconcile sees its own writes.
"""

from __future__ import annotations

import copy
import functools
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from .hashing import random_suffix
from .workqueue import WorkQueue

from tinykube import labels
from tinykube.model import meta
from tinykube.model.errors import AlreadyExists, Conflict, Gone, NotFound
from tinykube.model.meta import Obj

if TYPE_CHECKING:
    from tinykube.store import Store

Key = tuple[str, str]  # (namespace, name)

log = logging.getLogger("tinykube.controllers")

# Watch events reach the queue after this short wait, so a burst of them is one reconcile.
COALESCE_SECONDS = 0.05
# A key whose reconcile took d seconds waits PACE_FACTOR * d before its next event-driven
# pass: an expensive reconcile then uses at most ~1/(1 + PACE_FACTOR) of the daemon's thread.
PACE_FACTOR = 4.0
MAX_PACE_SECONDS = 0.5  # wall time includes awaited writes: never hold a key back longer


# ---- outcomes and the run loop ------------------------------------------------------------

@dataclass(frozen=True)
class Requeue:
    """Reconcile finished but wants another look after `after` seconds (0: as soon as possible)."""

    after: float = 0.0


Reconcile = Callable[["Store", Key], Awaitable["Requeue | None"]]
# Maps one watch event (type, object) of a watched kind to the primary keys to reconcile.
KeyMapper = Callable[["Store", str, Obj], Iterable[Key]]


@dataclass
class ControllerSpec:
    name: str
    kind: str  # the primary kind; its own events enqueue its own key
    reconcile: Reconcile
    watches: Sequence[tuple[str, KeyMapper]] = ()  # other kinds and how they map to keys
    workers: int = 4
    resync_seconds: float = 30.0
    queue: WorkQueue[Key] = field(default_factory=WorkQueue)
    # How long watch events wait so that a burst is one reconcile (0: client-go's plain
    # dedup, the next pass right after the event, or right after the running one).
    coalesce_seconds: float = COALESCE_SECONDS


def key_of(obj: Obj) -> Key:
    meta = obj["metadata"]
    return (meta.get("namespace") or "default", meta["name"])


def own_key(store: Store, event_type: str, obj: Obj) -> Iterable[Key]:
    return (key_of(obj),)


async def run_controller(store: Store, spec: ControllerSpec, *,
                         task_status: trio.TaskStatus[WorkQueue[Key]] = trio.TASK_STATUS_IGNORED
                         ) -> None:
    """Run `spec` until cancelled; `started()` once every watch is registered."""
    queue = spec.queue
    logger = log.getChild(spec.name)
    async with trio.open_nursery() as nursery:
        for kind, mapper in [(spec.kind, own_key), *spec.watches]:
            await nursery.start(functools.partial(watch_kind, coalesce=spec.coalesce_seconds),
                                store, kind, mapper, queue, logger)
        for _ in range(spec.workers):
            nursery.start_soon(_worker, store, spec, logger)
        nursery.start_soon(_resync, store, spec)
        task_status.started(queue)


async def watch_kind(store: Store, kind: str, mapper: KeyMapper, queue: WorkQueue[Key],
                     logger: logging.Logger, *, coalesce: float = COALESCE_SECONDS,
                     task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """List `kind` then watch it, feeding `mapper`'s keys to `queue`; re-list after Gone."""
    started = False
    # Mappers only read the objects to name keys: the store's own objects and events, not a
    # copy of each per controller (the copies were 2-4% of the daemon's samples in scale-outs,
    # scale-ins and recoveries, and 6% of a restart's at 500 pods: py-spy, scripts/bench).
    while True:
        since = store.resource_version
        for obj in store.list(kind, copy=False):
            _enqueue(queue, mapper, store, "ADDED", obj, logger, coalesce)
        try:
            with store.watch(kind, since=since) as watch:
                if not started:
                    task_status.started()
                    started = True
                while True:
                    try:
                        # The backlog in one pass: mapping an event to keys is cheap.
                        batch = await watch.receive_batch(shared=True)
                    except StopAsyncIteration:
                        break
                    for event in batch:
                        _enqueue(queue, mapper, store, event.type, event.object, logger,
                                 coalesce)
        except Gone:
            logger.info("watch on %s expired; re-listing", kind)
            continue
        return  # the store closed the watch: shutting down


def _enqueue(queue: WorkQueue[Key], mapper: KeyMapper, store: Store, event_type: str,
             obj: Obj, logger: logging.Logger, coalesce: float = COALESCE_SECONDS) -> None:
    try:
        at_once = event_type != "DELETED" and spec_unobserved(obj)
        for key in mapper(store, event_type, obj):
            if at_once:
                queue.add(key)
            else:
                queue.add_coalesced(key, coalesce)
    except Exception as exc:  # noqa: BLE001 -- a bad object must not stop its whole kind
        failure_log(queue).mapping_failed(obj, event_type, exc, logger)


def spec_unobserved(obj: Obj) -> bool:
    """A spec change its controller has not acted on yet (metadata.generation ahead of
    status.observedGeneration), e.g. a Deployment scaling one of its ReplicaSets. Its event
    is queued at once, not behind the coalescing window or the key's pace: it is one event,
    not a burst of pod status writes, and a rollout is a chain of them (the new ReplicaSet
    waited 20-45 ms per link for its window, up to 0.5 s after a pass that created pods)."""
    observed = (obj.get("status") or {}).get("observedGeneration")
    generation = obj["metadata"].get("generation")
    return observed is not None and generation is not None and generation > observed


async def _resync(store: Store, spec: ControllerSpec) -> None:
    while True:
        await trio.sleep(spec.resync_seconds)
        for obj in store.list(spec.kind, copy=False):  # only their keys are read
            spec.queue.add(key_of(obj))


async def _worker(store: Store, spec: ControllerSpec, logger: logging.Logger) -> None:
    await work(store, spec.queue, spec.reconcile, logger, spec.kind)


class FailureLog:
    """Which keys of one queue are failing, and with what: the traceback is logged when a key
    starts failing or fails differently, not at every retry."""

    def __init__(self) -> None:
        self._failing: dict[Any, str] = {}

    def failed(self, key: Any, exc: BaseException, logger: logging.Logger, what: str,
               retry_in: float) -> None:
        signature = f"{type(exc).__name__}: {exc}"
        if self._failing.get(key) == signature:
            logger.debug("%s %s: still failing (%s); retrying in %.1fs", what, key, signature,
                         retry_in)
            return
        self._failing[key] = signature
        logger.error("%s %s: reconcile failed; retrying with back-off (logged once while it "
                     "fails the same way)", what, key, exc_info=exc)

    def mapping_failed(self, obj: dict[str, Any], event_type: str, exc: BaseException,
                       logger: logging.Logger) -> None:
        """A watch event of `obj` could not be mapped to keys: logged once per object and
        error, like a failing reconcile."""
        meta = obj.get("metadata") or {}
        key = ("mapping", obj.get("kind"), meta.get("namespace"), meta.get("name"))
        signature = f"{type(exc).__name__}: {exc}"
        if self._failing.get(key) == signature:
            logger.debug("mapping %s event of %s/%s still fails: %s", event_type, key[1],
                         key[3], signature)
            return
        if len(self._failing) > 10_000:  # objects come and go: never grow without bound
            self._failing.clear()
        self._failing[key] = signature
        logger.error("mapping %s event of %s/%s failed (logged once while it fails the same "
                     "way)", event_type, key[1], key[3], exc_info=exc)

    def succeeded(self, key: Any, logger: logging.Logger, what: str) -> None:
        if self._failing.pop(key, None) is not None:
            logger.info("%s %s: reconcile succeeds again", what, key)


_failure_logs: weakref.WeakKeyDictionary[WorkQueue[Any], FailureLog] = (
    weakref.WeakKeyDictionary())


def failure_log(queue: WorkQueue[Any]) -> FailureLog:
    """The one FailureLog of `queue` (shared by its workers)."""
    found = _failure_logs.get(queue)
    if found is None:
        found = _failure_logs[queue] = FailureLog()
    return found


async def work(store: Store, queue: WorkQueue[Any], reconcile: Callable[[Store, Any],
               Awaitable[Requeue | None]], logger: logging.Logger, what: str) -> None:
    """One worker: take a key, reconcile it, map the outcome to a queue action, repeat.
    No exception of a reconcile ends the worker (only cancellation does)."""
    failures = failure_log(queue)
    while True:
        key = await queue.get()
        started = trio.current_time()
        try:
            outcome = await reconcile(store, key)
        except (Conflict, NotFound) as exc:
            # Lost a race with another writer, or the object (or one it writes) was deleted
            # meanwhile: normal under concurrent clients; the retry sees the new state.
            logger.debug("%s %s: %s, retrying", what, key, exc)
            queue.add_rate_limited(key)
        except Exception as exc:  # noqa: BLE001 -- any reconcile failure is retried, never fatal
            delay = queue.next_delay(key)  # add_rate_limited, with the delay for the log
            failures.failed(key, exc, logger, what, delay)
            queue.add_after(key, delay)
        else:
            failures.succeeded(key, logger, what)
            queue.forget(key)
            if outcome is not None:
                queue.add_after(key, outcome.after)
        finally:
            pace = min(PACE_FACTOR * (trio.current_time() - started), MAX_PACE_SECONDS)
            queue.pace(key, pace if pace > COALESCE_SECONDS else 0.0)
            queue.done(key)


# ---- owner references ---------------------------------------------------------------------

def owner_ref(owner: Obj) -> Obj:
    """The controller reference a dependent of `owner` carries."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owner_refs(obj: Obj) -> list[Obj]:
    return list(obj.get("metadata", {}).get("ownerReferences") or [])


def controller_ref(obj: Obj) -> Obj | None:
    for ref in owner_refs(obj):
        if ref.get("controller"):
            return ref
    return None


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == owner["metadata"]["uid"]


def selector_for(owner: Obj) -> labels.Selector:
    """The owner's pod selector. ReplicationController's defaults to its template labels.
    An empty selector matches nothing here: adopting every pod of the namespace is never
    what a controller object means (the API server rejects such objects anyway)."""
    spec = owner.get("spec") or {}
    if owner.get("kind") == "ReplicationController" and not spec.get("selector"):
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
        selector = labels.from_map(template_labels) if template_labels else labels.NOTHING
    else:
        selector = labels.for_object(owner)
    return labels.NOTHING if selector.empty else selector


@dataclass(frozen=True)
class Claim:
    """How an owner relates to the candidate dependents (pure result of `classify`)."""

    owned: list[Obj]  # controlled by the owner and matching (adoptees not included)
    adopt: list[Obj]  # orphans that match: to be adopted
    release: list[Obj]  # controlled by the owner but no longer matching


def classify(owner: Obj, candidates: Iterable[Obj], matches: Callable[[Obj], bool]) -> Claim:
    """Kubernetes' ClaimObject decision for every candidate, without side effects.

    Objects controlled by another owner are left alone. Orphans are adopted only if they match,
    are not being deleted, and the owner itself is not being deleted."""
    owner_uid = owner["metadata"]["uid"]
    owner_deleting = meta.is_being_deleted(owner)
    owned: list[Obj] = []
    adopt: list[Obj] = []
    release: list[Obj] = []
    for obj in candidates:
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("uid") != owner_uid:
                continue
            if matches(obj):
                owned.append(obj)
            elif not owner_deleting:
                release.append(obj)
            continue
        if owner_deleting or meta.is_being_deleted(obj) or not matches(obj):
            continue
        adopt.append(obj)
    return Claim(owned, adopt, release)


def labels_match(selector: labels.Selector) -> Callable[[Obj], bool]:
    return lambda obj: selector.matches(obj.get("metadata", {}).get("labels") or {})


_RETRIES = 5


async def update_fresh(store: Store, obj: Obj, change: Callable[[Obj], bool],
                       what: str) -> Obj | None:
    """Apply `change` to a fresh read of `obj` and write it, again on each Conflict.
    `change` returns False when the fresh object no longer qualifies; returns the updated
    object, or None if it is gone (or replaced) or did not qualify."""
    kind, (namespace, name) = obj["kind"], key_of(obj)
    uid = obj["metadata"]["uid"]
    for _ in range(_RETRIES):
        fresh = store.try_get(kind, namespace, name)
        if fresh is None or fresh["metadata"]["uid"] != uid or not change(fresh):
            return None
        try:
            return await store.update(fresh)
        except Conflict:
            continue
        except NotFound:
            return None
    raise Conflict.for_object(kind, name, why=f"could not {what} after {_RETRIES} conflicts")


async def adopt(store: Store, owner: Obj, obj: Obj,
                matches: Callable[[Obj], bool]) -> Obj | None:
    """Add `owner`'s controller ref to the orphan `obj`. Returns the updated object, or None
    if on a fresh read it no longer qualifies (gone, owned, deleting, not matching) or the owner
    is being deleted (Kubernetes re-checks the owner with a live read before adopting too)."""
    owner_uid = owner["metadata"]["uid"]

    def add_ref(fresh: Obj) -> bool:
        if controller_ref(fresh) is not None or meta.is_being_deleted(fresh) or not matches(fresh):
            return False
        current_owner = store.try_get(owner["kind"], *key_of(owner))
        if (current_owner is None or current_owner["metadata"]["uid"] != owner_uid
                or meta.is_being_deleted(current_owner)):
            return False
        refs = [r for r in owner_refs(fresh) if r.get("uid") != owner_uid]
        fresh["metadata"]["ownerReferences"] = refs + [owner_ref(owner)]
        return True

    return await update_fresh(store, obj, add_ref, "adopt it")


async def remove_owner_refs(store: Store, obj: Obj, owner_uids: set[str],
                            *, only_if_controller: bool = False) -> Obj | None:
    """Remove the references to `owner_uids` from `obj` (fresh read, conflict retries).
    Returns the updated object, or None if it is gone or had none of those references."""
    def drop_refs(fresh: Obj) -> bool:
        refs = owner_refs(fresh)
        if only_if_controller:
            ref = controller_ref(fresh)
            if ref is None or ref.get("uid") not in owner_uids:
                return False
        kept = [r for r in refs if r.get("uid") not in owner_uids]
        if len(kept) == len(refs):
            return False
        fresh["metadata"]["ownerReferences"] = kept
        return True

    return await update_fresh(store, obj, drop_refs, "update its ownerReferences")


async def release(store: Store, owner: Obj, obj: Obj) -> Obj | None:
    """Remove `owner`'s controller ref from `obj` (it stopped matching the selector)."""
    return await remove_owner_refs(store, obj, {owner["metadata"]["uid"]},
                                   only_if_controller=True)


# ---- pods from templates ------------------------------------------------------------------

_MAX_NAME_PREFIX = 58  # 63 - 5 random characters, as Kubernetes' SimpleNameGenerator


def generated_name(base: str) -> str:
    prefix = f"{base}-"[:_MAX_NAME_PREFIX]
    return prefix + random_suffix(5)


def pod_from_template(owner: Obj, template: Obj, *, name: str | None = None) -> Obj:
    """A Pod owned by `owner` from its pod template: labels, annotations, finalizers and spec
    copied, controller ref set; named `<owner>-<5 random chars>` unless `name` is given."""
    template_meta = template.get("metadata") or {}
    meta: Obj = {
        "name": name or generated_name(owner["metadata"]["name"]),
        "namespace": owner["metadata"].get("namespace") or "default",
        "ownerReferences": [owner_ref(owner)],
    }
    if name is None:
        meta["generateName"] = f"{owner['metadata']['name']}-"[:_MAX_NAME_PREFIX]
    for field_name in ("labels", "annotations", "finalizers"):
        if template_meta.get(field_name):
            meta[field_name] = copy.deepcopy(template_meta[field_name])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


async def create_pod(store: Store, owner: Obj, template: Obj, *,
                     name: str | None = None) -> Obj:
    """Create a pod from `template`; a generated name that happens to be taken is redrawn."""
    attempts = 1 if name is not None else _RETRIES
    for attempt in range(attempts):
        pod = pod_from_template(owner, template, name=name)
        try:
            return await store.create(pod)
        except AlreadyExists:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


# ---- pod state (the facts themselves are in tinykube/model/meta.py) ----------------

def now() -> float:
    return time.time()


def restart_count(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(s.get("restartCount") or 0) for s in statuses), default=0)


# ---- dependent -> owner key mapping -------------------------------------------------------

def owner_keys_for(owner_kind: str) -> KeyMapper:
    """Map events of a dependent kind (e.g. Pod) to the owners to reconcile: its controller
    when it has one of `owner_kind`, otherwise every `owner_kind` in the namespace whose
    selector matches it (a candidate for adoption)."""

    def mapper(store: Store, event_type: str, obj: Obj) -> Iterable[Key]:
        namespace = obj["metadata"].get("namespace") or "default"
        ref = controller_ref(obj)
        if ref is not None:
            return [(namespace, ref["name"])] if ref.get("kind") == owner_kind else []
        if event_type == "DELETED" or meta.is_being_deleted(obj):
            return []
        pod_labels = obj["metadata"].get("labels") or {}
        return [key_of(owner) for owner in store.list(owner_kind, namespace)
                if not meta.is_being_deleted(owner) and selector_for(owner).matches(pod_labels)]

    return mapper
