"""Claim directories go away with their PersistentVolumeClaims, and only then.

tinykube has no volume provisioner: a pod that mounts claim `c` gets the directory
`<root>/volumes/<namespace>/c/` (runtime/volumes.py), which outlives the pod so that a
StatefulSet's replacement pod finds its data. This task removes that directory once the claim
object is deleted (by `delete pvc`, by the StatefulSet controller under `whenScaled: Delete`,
by the garbage collector under `whenDeleted: Delete`):

- Seen, then deleted. Every claim the store shows us goes into the ledger
  (runtime/claimledger.py); a DELETED event on the watch writes a tombstone (fsynced) before
  anything is removed. Only tombstoned claims' directories are ever removed. A claim that is
  merely absent from the store (an empty or replaced `state.db`, or a crash between the
  store's delete and our seeing it) is never taken as a deletion: its directory is kept and a
  warning names it. Kubernetes, too, deletes volume data only on an explicit claim deletion.
- Protection. A directory goes only when no claim of that name exists *and* no pod in the store
  that has not finished (Succeeded/Failed) mounts it, like Kubernetes' pvc-protection
  finalizer: under `whenDeleted: Delete` the claims are deleted while their pods are still
  terminating, and the directory waits for the pods (a pod's DELETED event, or its turn to
  Succeeded/Failed, re-checks the claims it mounted).
- Atomic with the check. The directory is renamed into `<root>/volumes/.trash/` in the same
  synchronous step as the check: the store changes only on this trio thread, and a pod is in
  the store before its worker creates the directory, so no pod can start using it in between.
  The renamed tree is then deleted in a worker thread, without following symlinks a container
  left (runtime/safepath.py).
- Crash safety. At start the trash is emptied and every tombstone whose claim is still absent
  is retried, so a daemon that died between seeing the delete and the removal leaks nothing.

Known edge: a claim deleted and recreated under the same name while a pod still mounts the old
one's directory inherits that directory (Kubernetes would keep the old claim until the pod is
gone; tinykube's claims carry no finalizer).
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

import trio

from . import layout
from .claimledger import ClaimKey, ClaimLedger, read_ledger, write_ledger
from .safepath import remove_tree
from .volumes import VolumeError, claim_dir

from tinykube.model.meta import is_terminal

log = logging.getLogger("tinykube.runtime.claims")

KIND = "PersistentVolumeClaim"
TRASH_NAME = ".trash"


def claims_mounted(pod: dict[str, Any]) -> set[ClaimKey]:
    namespace = pod["metadata"].get("namespace") or "default"
    found = set()
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        source = volume.get("persistentVolumeClaim") or {}
        if source.get("claimName"):
            found.add((namespace, source["claimName"]))
    return found


class ClaimDirectories:
    """Removes `<root>/volumes/<ns>/<claim>/` when claim `<ns>/<claim>` is seen deleted."""

    def __init__(self, store: Any, root: Path) -> None:
        self.store = store
        self.volumes = layout.claims_dir(root)
        self.trash = self.volumes / TRASH_NAME
        self.ledger = ClaimLedger()
        self._wake_trash = trio.Event()

    @property
    def pending(self) -> set[ClaimKey]:
        """Tombstoned claims whose directory is still there."""
        return set(self.ledger.deleted)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        claims = self.store.list(KIND)
        since = self.store.resource_version
        with self.store.watch(KIND, since=since) as claim_events, \
                self.store.watch("Pod", since=since) as pod_events:
            self.volumes.mkdir(parents=True, exist_ok=True)
            await trio.to_thread.run_sync(self._empty_trash)
            self.ledger = read_ledger(self.volumes)
            self._reconcile_ledger({_key(c): c["metadata"].get("uid") for c in claims})
            self._write_ledger()
            self.sweep()
            task_status.started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._follow_claims, claim_events)
                nursery.start_soon(self._follow_pods, pod_events)
                nursery.start_soon(self._take_out_trash)

    def _reconcile_ledger(self, existing: dict[ClaimKey, str | None]) -> None:
        """Start-up: the store's claims are the ledger's; a tombstone whose claim exists again
        is void (the recreated claim inherits the data); a claim the ledger knew that is gone
        without a tombstone was never seen deleted, so its directory is kept and forgotten."""
        for key in [k for k in self.ledger.deleted if k in existing]:
            del self.ledger.deleted[key]
        for key in sorted(set(self.ledger.claims) - set(existing) - set(self.ledger.deleted)):
            namespace, name = key
            log.warning("claim %s/%s is gone from the store but its deletion was never "
                        "observed: keeping its directory %s (remove it by hand if unwanted)",
                        namespace, name, self.volumes / namespace / name)
            del self.ledger.claims[key]
        self.ledger.claims.update(existing)

    async def _follow_claims(self, events: Any) -> None:
        async for event in events:
            key = _key(event.object)
            uid = event.object["metadata"].get("uid")
            if event.type == "DELETED":
                self.ledger.deleted[key] = uid
                self.ledger.claims.pop(key, None)
                self._write_ledger()  # the tombstone is on disk before anything is removed
                self.sweep({key})
            elif self.ledger.claims.get(key) != uid or key in self.ledger.deleted:
                self.ledger.claims[key] = uid
                self.ledger.deleted.pop(key, None)
                self._write_ledger()

    async def _follow_pods(self, events: Any) -> None:
        async for event in events:
            if self.ledger.deleted and (event.type == "DELETED" or _finished(event.object)):
                waiting = claims_mounted(event.object) & self.pending
                if waiting:
                    self.sweep(waiting)

    async def _take_out_trash(self) -> None:
        while True:
            await self._wake_trash.wait()
            self._wake_trash = trio.Event()
            await trio.to_thread.run_sync(self._empty_trash)

    # -- removal ---------------------------------------------------------------------------
    def sweep(self, keys: set[ClaimKey] | None = None) -> None:
        """Remove the directories of tombstoned claims that nothing uses any more. Synchronous
        between the check and the rename on purpose (see the module docstring)."""
        keys = set(self.pending if keys is None else keys & self.pending)
        if not keys:
            return
        in_use = self._claims_in_use({ns for ns, _ in keys})
        changed = False
        for key in sorted(keys):
            namespace, name = key
            if self.store.try_get(KIND, namespace, name) is not None:
                del self.ledger.deleted[key]  # recreated under the same name: the data is its
                changed = True
                continue
            if key in in_use:
                continue  # a pod (maybe terminating) still mounts it: its DELETED retries
            if self._move_to_trash(key):
                del self.ledger.deleted[key]
                changed = True
        if changed:
            self._write_ledger()
            self._wake_trash.set()

    def _claims_in_use(self, namespaces: set[str]) -> set[ClaimKey]:
        used: set[ClaimKey] = set()
        for namespace in namespaces:
            for pod in self.store.list("Pod", namespace):
                # A pod that has finished runs no process that could hold the directory (as
                # Kubernetes' pvc-protection ignores Succeeded/Failed pods).
                if not _finished(pod):
                    used |= claims_mounted(pod)
        return used

    def _move_to_trash(self, key: ClaimKey) -> bool:
        namespace, name = key
        try:
            source = claim_dir(self.volumes.parent, namespace, name)
        except VolumeError as e:
            log.warning("claim %s/%s: not removing its directory: %s", namespace, name, e)
            return True  # an impossible name: nothing of ours can be there
        try:
            self.trash.mkdir(exist_ok=True)
            # rename() acts on the last component itself: a symlink planted as the namespace
            # directory is refused below, and one planted as the claim is moved, not followed.
            if (self.volumes / namespace).is_symlink():
                raise OSError(f"{self.volumes / namespace} is a symlink")
            os.rename(source, self.trash / f"{namespace}.{name}.{uuid.uuid4().hex[:8]}")
        except FileNotFoundError:
            return True  # no pod ever mounted it
        except OSError as e:
            log.warning("claim %s/%s deleted, but removing %s failed: %s", namespace, name,
                        source, e)
            return False
        log.info("claim %s/%s deleted: removing %s", namespace, name, source)
        return True

    def _empty_trash(self) -> None:
        """(Worker thread.) Delete what `_move_to_trash` renamed; errors are logged, and the
        next start retries."""
        for entry in self.trash.iterdir() if self.trash.is_dir() else []:
            try:
                remove_tree(self.trash, entry.name)
            except OSError as e:
                log.warning("removing %s: %s", entry, e)

    def _write_ledger(self) -> None:
        self.ledger.resource_version = self.store.resource_version
        write_ledger(self.volumes, self.ledger)


def _key(claim: dict[str, Any]) -> ClaimKey:
    meta = claim["metadata"]
    return meta.get("namespace") or "default", meta["name"]


def _finished(pod: dict[str, Any]) -> bool:
    return is_terminal(pod)
