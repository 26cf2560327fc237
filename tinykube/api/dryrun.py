"""`dryRun=All`: a write is checked exactly as a real one, and nothing is stored.

`DryRunStore` stands in for the store during one request: reads go to the real store,
writes compute the object the store would have written (system fields, generation) and
return it without committing, publishing or fsyncing anything. Kubernetes answers a dry-run
create with a uid and creationTimestamp but no resourceVersion; so do we.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from tinykube.model.errors import AlreadyExists, BadRequest, Conflict, NotFound
from tinykube.model.meta import now_iso

_SYSTEM_FIELDS = ("uid", "creationTimestamp", "generation", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "resourceVersion", "namespace", "name")


def requested(query: dict[str, str]) -> bool:
    """True for `dryRun=All`; other values are refused as Kubernetes does."""
    value = query.get("dryRun")
    if value is None or value == "":
        return False
    if value != "All":
        raise BadRequest(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return True


def _now() -> str:
    return now_iso()


class DryRunStore:
    """The store's read side, with writes that only say what they would do."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        # Reads (get, try_get, list, events, resource_version, watch) are the real store's.
        if name in ("create", "update", "update_status", "delete", "record_event"):
            raise AttributeError(name)
        return getattr(self._store, name)

    async def create(self, obj: dict, *, durable: bool = False) -> dict:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        if self._store.try_get(obj["kind"], meta["namespace"], meta.get("name", "")):
            raise AlreadyExists.for_object(obj["kind"], meta.get("name", ""))
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        for transient in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(transient, None)
        return obj

    def _current(self, obj: dict) -> dict:
        meta = obj.get("metadata", {})
        current = self._store.get(obj["kind"], meta.get("namespace", "default"),
                                  meta.get("name", ""))
        if meta.get("uid") and meta["uid"] != current["metadata"]["uid"]:
            raise Conflict.for_object(obj["kind"], meta["name"],
                                      why="the object has been deleted and recreated")
        rv = meta.get("resourceVersion")
        if rv not in (None, "") and str(rv) != current["metadata"]["resourceVersion"]:
            raise Conflict.for_object(obj["kind"], meta["name"])
        return current

    async def update(self, obj: dict, *, durable: bool = False) -> dict:
        current = self._current(obj)
        new = copy.deepcopy(obj)
        meta = new.setdefault("metadata", {})
        for name in _SYSTEM_FIELDS:
            if name in current["metadata"]:
                meta[name] = current["metadata"][name]
            else:
                meta.pop(name, None)
        if "status" in current:
            new["status"] = current["status"]
        else:
            new.pop("status", None)
        if new.get("spec") != current.get("spec"):
            meta["generation"] = current["metadata"].get("generation", 1) + 1
        return new

    async def update_status(self, obj: dict, *, durable: bool = False) -> dict:
        current = self._current(obj)
        current["status"] = copy.deepcopy(obj.get("status") or {})
        return current

    async def delete(self, kind: str, namespace: str, name: str, **options: Any) -> dict:
        current = self._store.try_get(kind, namespace, name)
        if current is None:
            raise NotFound.for_object(kind, name)
        return current
