"""The `namespaces` resource (cluster-scoped): `default`, every namespace that holds
objects (tinykube never required creating one first), and those created explicitly.

Created namespaces are stored as `Namespace` objects keyed under their own name. Deleting a
namespace deletes everything in it (controllers' dependents go through the garbage
collector as usual) and then the namespace; `default` cannot be deleted, as in Kubernetes.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from tinykube.api import dryrun, patch, ssa, tables
from tinykube.cli import printing
from tinykube.model import names
from tinykube.model.errors import (
    AlreadyExists,
    ApiError,
    BadRequest,
    FieldError,
    Invalid,
    NotFound,
)
from tinykube.model.kinds import KINDS

KIND = "Namespace"
# Deleted first to last: owners before what they own, so nothing is recreated meanwhile.
DELETE_ORDER = ("Deployment", "StatefulSet", "ReplicaSet", "ReplicationController", "Pod",
                "PersistentVolumeClaim", "Service", "EndpointSlice", "ConfigMap", "Secret")


def route(path: str) -> tuple[str | None] | None:
    """(None,) for the collection, (name,) for one namespace, None for other paths."""
    parts = [p for p in path.split("/") if p]
    if parts[:3] != ["api", "v1", "namespaces"] or len(parts) > 4:
        return None
    return (parts[3] if len(parts) == 4 else None,)


def _public(obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    obj["metadata"].pop("namespace", None)
    obj.setdefault("spec", {"finalizers": ["kubernetes"]})
    obj["status"] = {"phase": "Terminating" if obj["metadata"].get("deletionTimestamp")
                     else "Active"}
    return obj


def _implicit(name: str, store: Any) -> dict:
    held = [o for info in KINDS if info.kind != KIND for o in store.list(info.kind, name)]
    created = min((o["metadata"].get("creationTimestamp") or "" for o in held), default="")
    return {"apiVersion": "v1", "kind": KIND, "metadata": {
        "name": name, "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"tinykube:ns:{name}")),
        "resourceVersion": str(store.resource_version),
        "creationTimestamp": created or None,
        "labels": {"kubernetes.io/metadata.name": name}}}


def all_namespaces(store: Any) -> dict[str, dict]:
    found = {"default": _implicit("default", store)}
    for info in KINDS:
        if info.kind != KIND:
            for obj in store.list(info.kind):
                ns = obj["metadata"].get("namespace", "default")
                if ns not in found:
                    found[ns] = _implicit(ns, store)
    for obj in store.list(KIND):
        found[obj["metadata"]["name"]] = obj
    return {name: _public(obj) for name, obj in sorted(found.items())}


def _checked(obj: Any, name: str | None) -> dict:
    if not isinstance(obj, dict) or obj.get("kind") != KIND or obj.get("apiVersion") != "v1":
        raise BadRequest('the body must be a Namespace (apiVersion "v1", kind "Namespace")')
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise BadRequest("metadata: must be an object")
    if name is not None and meta.get("name") != name:
        raise BadRequest(f"metadata.name: the name of the object ({meta.get('name')}) does "
                         f"not match the name on the URL ({name})")
    new_name = meta.get("name")
    problems = names.dns1123_label(new_name) if isinstance(new_name, str) and new_name else [
        "Required value"]
    if problems:
        raise Invalid.for_object(obj, [FieldError("metadata.name", problems[0])])
    meta["namespace"] = new_name  # the store's key: each namespace under its own name
    for part in ("spec", "status"):
        obj.pop(part, None)
    return obj


async def handle(api: Any, request: Any, name: str | None) -> tuple[int, dict]:
    """Serve one request on /api/v1/namespaces[/name]."""
    store = api.store
    writer = dryrun.DryRunStore(store) if request.method != "GET" and dryrun.requested(
        request.query) else store
    known = all_namespaces(store)
    if request.method == "GET" and (request.query.get("watch") or "").lower() in ("1", "true"):
        raise ApiError("watching namespaces is not supported by tinykube; list them instead",
                       code=405, reason="MethodNotAllowed")
    if request.method == "GET" and name is None:
        items = list(known.values())
        wanted_name = request.query.get("fieldSelector", "").partition("metadata.name=")[2]
        if wanted_name:
            items = [o for o in items if o["metadata"]["name"] == wanted_name]
        body = {"apiVersion": "v1", "kind": "NamespaceList",
                "metadata": {"resourceVersion": str(store.resource_version)}, "items": items}
        return 200, _table_if_asked(request, body)
    if request.method == "POST" and name is None:
        obj = _checked(request.json(), None)
        existing = known.get(obj["metadata"]["name"])
        if existing is not None and (request.query.get("apply") or "") == "true":
            return 200, existing  # `tinykube apply` of a namespace that exists: unchanged
        if existing is not None:
            raise AlreadyExists.for_object(KIND, obj["metadata"]["name"])
        return 201, _public(await writer.create(obj, durable=True))
    if name is None:
        raise ApiError(f"method {request.method} is not allowed on namespaces", code=405,
                       reason="MethodNotAllowed")
    if name not in known:
        raise NotFound.for_object(KIND, name)
    current = store.try_get(KIND, name, name)
    if request.method == "GET":
        return 200, _table_if_asked(request, known[name])
    if request.method == "DELETE":
        if name == "default":
            raise ApiError('namespaces "default" is forbidden: this namespace may not be '
                           "deleted", code=403, reason="Forbidden")
        for kind in DELETE_ORDER:
            for obj in store.list(kind, name):
                try:
                    await writer.delete(kind, name, obj["metadata"]["name"], durable=True)
                except NotFound:
                    continue
        gone = known[name]
        if current is not None:
            gone = _public(await writer.delete(KIND, name, name, durable=True))
        gone["status"] = {"phase": "Terminating"}
        return 200, gone
    if request.method in ("PUT", "PATCH"):
        base = current or {k: v for k, v in known[name].items() if k != "status"}
        base["metadata"]["namespace"] = name
        media = patch.media_type(request.headers.get("content-type"))
        if request.method == "PUT":
            new = request.json()
        elif media == patch.APPLY:
            new = ssa.apply(base, request.json(), manager=ssa.field_manager(request.query),
                            force=request.query.get("force") == "true", kind=KIND)
        else:
            new = patch.apply_patch(base, request.headers.get("content-type"),
                                    request.json())
        new = _checked(new, name)
        if current is None:
            return 200, _public(await writer.create(new, durable=True))
        return 200, _public(await writer.update(new, durable=True))
    raise ApiError(f"method {request.method} is not allowed on a namespace", code=405,
                   reason="MethodNotAllowed")


def _table_if_asked(request: Any, body: dict) -> dict:
    if not tables.wanted(request.headers.get("accept")):
        return body
    items = body["items"] if body["kind"] == "NamespaceList" else [body]
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": body["metadata"].get("resourceVersion", "")},
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "description": "name",
                 "priority": 0},
                {"name": "Status", "type": "string", "format": "", "description": "phase",
                 "priority": 0},
                {"name": "Age", "type": "string", "format": "", "description": "age",
                 "priority": 0}],
            "rows": [{"cells": [o["metadata"]["name"], o["status"]["phase"],
                                printing.age(o["metadata"].get("creationTimestamp"))],
                      "object": {"kind": "PartialObjectMetadata",
                                 "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}}
                     for o in items]}

