"""Server-side apply (`PATCH` with `application/apply-patch+yaml`): the applied
configuration is merged into the object (created if absent), and each field manager's set
of fields is recorded in `metadata.managedFields` (FieldsV1: `f:name` fields, `k:{...}` list
items by merge key, `v:...` set members).

A manager that stops applying a field it alone owned gets it removed; applying a value that
another manager's applied configuration set differently is a 409 conflict naming the
manager and field, unless `force=true`, which takes the field over. Only Apply operations
are tracked as owners (writes by PUT/PATCH do not take ownership): a simplification of
Kubernetes, which also records Update managers.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from tinykube.api.patch import strategic_merge
from tinykube.model import schema
from tinykube.model.errors import ApiError, BadRequest
from tinykube.model.meta import now_iso

Path = tuple[str, ...]
TRACKED_METADATA = ("labels", "annotations")


def _item_key(item: dict, key: str) -> str:
    return "k:" + json.dumps({key: item.get(key)}, separators=(",", ":"))


def fields_of(config: dict, node: schema.Node) -> dict:
    """The FieldsV1 set of an applied configuration."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        child = schema.child(node, key)
        if isinstance(value, dict) and value:
            out[f"f:{key}"] = fields_of(value, child)
        elif isinstance(value, list) and isinstance(child, schema.ListOf) and child.merge_key \
                and all(isinstance(i, dict) and child.merge_key in i for i in value):
            out[f"f:{key}"] = {_item_key(i, child.merge_key): {".": {}, **fields_of(
                dict(i.items()), child.item)} for i in value}
        elif isinstance(value, list) and isinstance(child, schema.ListOf) and \
                child.patch_strategy == "merge" and not child.merge_key:
            out[f"f:{key}"] = {"v:" + json.dumps(v): {} for v in value}
        else:
            out[f"f:{key}"] = {}
    return out


def applied_fields(config: dict, node: schema.Node) -> dict:
    tracked: dict[str, Any] = {}
    meta = {k: config["metadata"][k] for k in TRACKED_METADATA
            if config.get("metadata", {}).get(k)}
    if meta:
        tracked["f:metadata"] = fields_of(meta, schema.OBJECT_META)
    if isinstance(config.get("spec"), dict):
        tracked["f:spec"] = fields_of(config["spec"], schema.child(node, "spec"))
    # ConfigMap, Secret: the content is top-level (data keys are owned one by one).
    content = {k: config[k] for k in schema.CONTENT_FIELDS.get(config.get("kind") or "", ())
               if config.get(k) is not None}
    tracked.update(fields_of(content, node))
    return tracked


def leaves(fields: dict, prefix: Path = ()) -> set[Path]:
    found: set[Path] = set()
    for key, sub in fields.items():
        if key == ".":
            continue
        path = (*prefix, key)
        if sub:
            found |= leaves(sub, path)
        else:
            found.add(path)
    return found


def _lookup(obj: Any, path: Path) -> Any:
    for part in path:
        if isinstance(obj, dict) and part.startswith("f:"):
            obj = obj.get(part[2:])
        elif isinstance(obj, list) and part.startswith("k:"):
            want = json.loads(part[2:])
            obj = next((i for i in obj if isinstance(i, dict) and all(
                i.get(k) == v for k, v in want.items())), None)
        elif isinstance(obj, list) and part.startswith("v:"):
            return json.loads(part[2:]) if json.loads(part[2:]) in obj else None
        else:
            return None
    return obj


def _remove(obj: Any, path: Path) -> None:
    parent = _lookup(obj, path[:-1]) if len(path) > 1 else obj
    last = path[-1]
    if isinstance(parent, dict) and last.startswith("f:"):
        parent.pop(last[2:], None)
    elif isinstance(parent, list) and last.startswith("k:"):
        item = _lookup(parent, (last,))
        if item is not None:
            parent.remove(item)
    elif isinstance(parent, list) and last.startswith("v:"):
        value = json.loads(last[2:])
        if value in parent:
            parent.remove(value)


def _from_leaves(paths: set[Path]) -> dict:
    out: dict[str, Any] = {}
    for path in paths:
        node = out
        for part in path:
            node = node.setdefault(part, {})
    return out


def _entry(manager: str, api_version: str, fields: dict) -> dict:
    return {"manager": manager, "operation": "Apply", "apiVersion": api_version,
            "time": now_iso(),
            "fieldsType": "FieldsV1", "fieldsV1": fields}


def field_manager(query: dict[str, str]) -> str:
    manager = query.get("fieldManager") or ""
    if not manager:
        raise BadRequest("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required "
                         "value: is required for apply patch")
    if len(manager) > 128:
        raise BadRequest("fieldManager: Too long: may not be more than 128 bytes")
    return manager


def apply(current: dict | None, config: Any, *, manager: str, force: bool, kind: str) -> dict:
    """The object after `manager` applies `config` (not yet validated or stored)."""
    if not isinstance(config, dict):
        raise BadRequest("an apply patch must be an object")
    node = schema.SCHEMAS.get(kind, schema.AnyValue())
    config = copy.deepcopy(config)
    config.setdefault("metadata", {}).pop("managedFields", None)
    new_fields = applied_fields(config, node)
    new_leaves = leaves(new_fields)
    if current is None:
        obj = copy.deepcopy(config)
        obj["metadata"]["managedFields"] = [_entry(manager, config.get("apiVersion", ""),
                                                   new_fields)]
        return obj
    entries = [e for e in current["metadata"].get("managedFields") or []
               if isinstance(e, dict) and e.get("operation") == "Apply"]
    mine = next((e for e in entries if e.get("manager") == manager), None)
    others = [e for e in entries if e.get("manager") != manager]
    conflicts = []
    for entry in others:
        owned = leaves(entry.get("fieldsV1") or {})
        for path in sorted(owned & new_leaves):
            if _lookup(current, path) != _lookup(config, path):
                conflicts.append((entry["manager"], path))
    if conflicts and not force:
        raise conflict_error(conflicts, current)
    for entry in others:  # forced: the conflicting fields change owner
        lost = {p for m, p in conflicts if m == entry["manager"]}
        if lost:
            entry["fieldsV1"] = _from_leaves(leaves(entry.get("fieldsV1") or {}) - lost)
    obj = copy.deepcopy(current)
    still_owned = set().union(*(leaves(e.get("fieldsV1") or {}) for e in others)) \
        if others else set()
    for path in sorted(leaves((mine or {}).get("fieldsV1") or {}) - new_leaves - still_owned,
                       key=len, reverse=True):
        _remove(obj, path)
    obj = strategic_merge(obj, {k: v for k, v in config.items() if k != "status"}, node)
    # The same fields applied again keep their entry (and its time), so an apply that
    # changes nothing leaves the object, and its resourceVersion, as it was.
    entry = mine if mine is not None and mine.get("fieldsV1") == new_fields else _entry(
        manager, config.get("apiVersion", ""), new_fields)
    obj["metadata"]["managedFields"] = [
        *(e for e in current["metadata"].get("managedFields") or []
          if isinstance(e, dict) and e.get("operation") != "Apply"),
        *others, entry]
    return obj


def _path_text(path: Path) -> str:
    return ".".join(p[2:] if p.startswith("f:") else f"[{p[2:]}]" for p in path)


def conflict_error(conflicts: list[tuple[str, Path]], obj: dict) -> ApiError:
    causes = [{"reason": "FieldManagerConflict",
               "message": f'conflict with "{m}"', "field": "." + _path_text(p)}
              for m, p in conflicts]
    lines = "\n".join(f'- {c["message"]}: {c["field"]}' for c in causes)
    return ApiError(f"Apply failed with {len(conflicts)} conflict"
                    f"{'s' if len(conflicts) > 1 else ''}: {lines}", code=409,
                    reason="Conflict",
                    details={"name": obj["metadata"].get("name"), "kind": obj.get("kind"),
                             "causes": causes})
