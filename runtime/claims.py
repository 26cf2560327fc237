"""Claim directories go away with their PersistentVolumeClaims.

tinykube has no volume provisioner: a pod that mounts claim `c` gets the directory
`<root>/volumes/<namespace>/c/` (runtime/volumes.py), which outlives the pod so that a
StatefulSet's replacement pod finds its data. This task removes that directory once the claim
object is deleted (by `delete pvc`, by the StatefulSet controller under `whenScaled: Delete`,
by the garbage collector under `whenDeleted: Delete`), and only then:

- Ledger. Every claim the store has shown us is recorded by name in `<root>/volumes/.claims`
  (one `namespace/name` a line). Only directories named in it are ever removed, so a directory
  made for a pod whose claim never existed, or anything a user put under `volumes/`, is never
  touched. Names are DNS-1123, so the dot-files here cannot clash with a namespace.
- Protection. A directory goes only when no claim of that name exists *and* no pod in the store
  that has not finished (Succeeded/Failed) mounts it, like Kubernetes' pvc-protection
  finalizer: under `whenDeleted: Delete` the claims are deleted while their pods are still
  terminating, and the directory waits for the pods (a pod's DELETED event, or its turn to
  Succeeded/Failed, re-checks the claims it mounted).
- Atomic with the check. The directory is renamed into `<root>/volumes/.trash/` in the same
  synchronous step as the check: the store changes only on this trio thread, and a pod is in
  the store before its worker creates the directory, so no pod can start using it in between.
  The renamed tree is then deleted in a worker thread (`shutil.rmtree` unlinks symlinks a
  container left and never follows them).
- Crash safety. At start the trash is emptied and every ledger entry whose claim is gone is
  retried, so a daemon that died between the store's delete and the removal leaks nothing.

Known edge: a claim deleted and recreated under the same name while a pod still mounts the old
one's directory inherits that directory (Kubernetes would keep the old claim until the pod is
gone; tinykube's claims carry no finalizer).
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import trio

from .volumes import VolumeError, claim_dir

log = logging.getLogger("tinykube.runtime.claims")

KIND = "PersistentVolumeClaim"
LEDGER_NAME = ".claims"
TRASH_NAME = ".trash"

ClaimKey = tuple[str, str]  # (namespace, claim name)


def claims_mounted(pod: dict[str, Any]) -> set[ClaimKey]:
    namespace = pod["metadata"].get("namespace") or "default"
    found = set()
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        source = volume.get("persistentVolumeClaim") or {}
        if source.get("claimName"):
            found.add((namespace, source["claimName"]))
    return found


class ClaimDirectories:
    """Removes `<root>/volumes/<ns>/<claim>/` when claim `<ns>/<claim>` is deleted."""

    def __init__(self, store: Any, root: Path) -> None:
        self.store = store
        self.volumes = Path(root) / "volumes"
        self.ledger_path = self.volumes / LEDGER_NAME
        self.trash = self.volumes / TRASH_NAME
        self.known: set[ClaimKey] = set()  # the ledger, in memory
        self.pending: set[ClaimKey] = set()  # deleted claims whose directory is still there
        self._wake_trash = trio.Event()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        claims = self.store.list(KIND)
        since = self.store.resource_version
        with self.store.watch(KIND, since=since) as claim_events, \
                self.store.watch("Pod", since=since) as pod_events:
            self.volumes.mkdir(parents=True, exist_ok=True)
            await trio.to_thread.run_sync(self._empty_trash)
            existing = {_key(c) for c in claims}
            self.known = self._read_ledger() | existing
            self.pending = self.known - existing
            self._write_ledger()
            self.sweep()
            task_status.started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._follow_claims, claim_events)
                nursery.start_soon(self._follow_pods, pod_events)
                nursery.start_soon(self._take_out_trash)

    async def _follow_claims(self, events: Any) -> None:
        async for event in events:
            key = _key(event.object)
            if event.type == "DELETED":
                self.pending.add(key)
                self.sweep({key})
            elif key not in self.known:
                self.known.add(key)
                self._write_ledger()

    async def _follow_pods(self, events: Any) -> None:
        async for event in events:
            if self.pending and (event.type == "DELETED" or _finished(event.object)):
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
        """Remove the directories of pending claims that nothing uses any more. Synchronous
        between the check and the rename on purpose (see the module docstring)."""
        keys = set(self.pending if keys is None else keys & self.pending)
        if not keys:
            return
        in_use = self._claims_in_use({ns for ns, _ in keys})
        removed = []
        for key in sorted(keys):
            namespace, name = key
            if self.store.try_get(KIND, namespace, name) is not None:
                self.pending.discard(key)  # recreated under the same name: the data is its
                continue
            if key in in_use:
                continue  # a pod (maybe terminating) still mounts it: its DELETED retries
            if self._move_to_trash(key):
                self.pending.discard(key)
                self.known.discard(key)
                removed.append(key)
        if removed:
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
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            except OSError as e:
                log.warning("removing %s: %s", entry, e)

    # -- the ledger ------------------------------------------------------------------------
    def _read_ledger(self) -> set[ClaimKey]:
        try:
            text = self.ledger_path.read_text()
        except FileNotFoundError:
            return set()
        known = set()
        for line in text.splitlines():
            namespace, _, name = line.strip().partition("/")
            if namespace and name:
                known.add((namespace, name))
        return known

    def _write_ledger(self) -> None:
        """Replace the ledger atomically (a torn file would forget claims, never invent
        them: losing an entry can only leak a directory, not remove a wrong one)."""
        tmp = self.ledger_path.with_name(LEDGER_NAME + ".tmp")
        tmp.write_text("".join(f"{ns}/{name}\n" for ns, name in sorted(self.known)))
        os.replace(tmp, self.ledger_path)


def _key(claim: dict[str, Any]) -> ClaimKey:
    meta = claim["metadata"]
    return meta.get("namespace") or "default", meta["name"]


def _finished(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
