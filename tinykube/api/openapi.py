"""OpenAPI v3, generated from tinykube's own schema (`tinykube.model.schema.SCHEMAS`), the
same one the API validates with: one source of truth.

`/openapi/v3` lists one document per group-version; each document has the kinds' schemas
(with Kubernetes' strategic-merge-patch extensions on the lists that merge by key) and their
paths, whose operations carry `x-kubernetes-group-version-kind` and the query parameters the
server honours (`dryRun`, `fieldManager`, `fieldValidation`, `force`). kubectl reads the
parameters to decide it may validate on the server, and the list extensions to compute its
apply patches.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from tinykube.api.discovery import group_versions, subresources, verbs
from tinykube.model import schema as s
from tinykube.model.kinds import KindInfo

PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")
PRESERVE = {"x-kubernetes-preserve-unknown-fields": True}


def to_openapi(node: s.Node) -> dict[str, Any]:
    """One schema node as an OpenAPI v3 schema object."""
    if isinstance(node, s.Unsupported):
        return {"description": "not supported by tinykube", **PRESERVE}
    if isinstance(node, s.AnyValue):
        return dict(PRESERVE)
    if isinstance(node, s.Str):
        out: dict[str, Any] = {"type": "string"}
        if node.enum:
            out["enum"] = list(node.enum)
        return out
    if isinstance(node, s.Int):
        out = {"type": "integer", "format": "int32"}
        if node.minimum is not None:
            out["minimum"] = node.minimum
        if node.maximum is not None:
            out["maximum"] = node.maximum
        return out
    if isinstance(node, s.Bool):
        return {"type": "boolean"}
    if isinstance(node, s.IntOrString):
        return {"x-kubernetes-int-or-string": True,
                "anyOf": [{"type": "integer"}, {"type": "string"}]}
    if isinstance(node, (s.Quantity, s.ResourceQuantity)):
        return {"x-kubernetes-int-or-string": True,
                "anyOf": [{"type": "number"}, {"type": "string"}]}
    if isinstance(node, s.ListOf):
        out = {"type": "array", "items": to_openapi(node.item)}
        if node.merge_key:
            out.update({"x-kubernetes-patch-merge-key": node.merge_key,
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": [node.merge_key]})
        if node.patch_strategy:
            out["x-kubernetes-patch-strategy"] = node.patch_strategy
        return out
    if isinstance(node, s.MapOf):
        return {"type": "object", "additionalProperties": to_openapi(node.value)}
    if isinstance(node, s.Obj):
        out = {"type": "object",
               "properties": {name: to_openapi(child) for name, child in node.fields.items()}}
        if node.required:
            out["required"] = list(node.required)
        return out
    raise TypeError(f"no OpenAPI form for {type(node).__name__}")


def schema_name(info: KindInfo, kind: str | None = None) -> str:
    # Go package names: the group's first label (discovery.k8s.io -> io.k8s.api.discovery).
    package = "core" if not info.group else info.group.split(".")[0]
    return f"io.k8s.api.{package}.{info.version}.{kind or info.kind}"


SCALE = "io.k8s.api.autoscaling.v1.Scale"
PATCH = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"


def _gvk(info: KindInfo) -> dict:
    return {"group": info.group, "version": info.version, "kind": info.kind}


def _kind_schema(info: KindInfo) -> dict:
    node = s.SCHEMAS.get(info.kind)
    found: dict[str, Any] = to_openapi(node) if node is not None else {
        "type": "object", "properties": {"apiVersion": {"type": "string"},
                                         "kind": {"type": "string"},
                                         "metadata": to_openapi(s.OBJECT_META)}, **PRESERVE}
    if "status" in found.get("properties", {}):
        found["properties"]["status"] = {"type": "object", **PRESERVE}
    found["x-kubernetes-group-version-kind"] = [_gvk(info)]
    return found


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _param(name: str, where: str = "query", required: bool = False) -> dict:
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": {"type": "string", "uniqueItems": True}}


WRITE_PARAMS = [_param("dryRun"), _param("fieldManager"), _param("fieldValidation")]


def _operation(info: KindInfo, action: str, schema: str, gvk: dict, *,
               body: bool = False, patch: bool = False) -> dict:
    op: dict[str, Any] = {
        "operationId": f"{action}{info.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "parameters": [_param("pretty")] + (
            WRITE_PARAMS if body or patch or action == "delete" else []),
        "responses": {"200": {"description": "OK", "content": {
            "application/json": {"schema": _ref(schema)}}},
                      "401": {"description": "Unauthorized"}},
    }
    if patch:
        op["parameters"].append(_param("force"))
        op["requestBody"] = {"required": True, "content": {
            t: {"schema": _ref(PATCH)} for t in PATCH_TYPES}}
    elif body:
        op["requestBody"] = {"required": True, "content": {"*/*": {"schema": _ref(schema)}}}
    return op


def _paths(info: KindInfo) -> dict:
    base = f"/apis/{info.api_version}" if info.group else "/api/v1"
    ns = [_param("namespace", "path")] if info.namespaced else []
    named = ns + [_param("name", "path")]
    scope = f"{base}/namespaces/{{namespace}}" if info.namespaced else base
    kind_ref, list_ref = schema_name(info), schema_name(info, f"{info.kind}List")
    gvk = _gvk(info)
    writable = "create" in verbs(info)
    collection: dict[str, Any] = {"parameters": ns, "get": _operation(info, "list", list_ref,
                                                                      gvk)}
    item: dict[str, Any] = {"parameters": named, "get": _operation(info, "get", kind_ref, gvk)}
    if writable:
        collection["post"] = _operation(info, "post", kind_ref, gvk, body=True)
        if "deletecollection" in verbs(info):
            collection["delete"] = _operation(info, "deletecollection", STATUS, gvk)
        item["put"] = _operation(info, "put", kind_ref, gvk, body=True)
        item["patch"] = _operation(info, "patch", kind_ref, gvk, patch=True)
        item["delete"] = _operation(info, "delete", kind_ref, gvk)
    paths = {f"{scope}/{info.plural}": collection, f"{scope}/{info.plural}/{{name}}": item}
    if info.namespaced:
        paths[f"{base}/{info.plural}"] = {"get": _operation(info, "list", list_ref, gvk)}
    for name, group, version, kind, _ in subresources(info):
        if name not in ("status", "scale"):
            continue
        ref = SCALE if name == "scale" else kind_ref
        sub_gvk = {"group": group, "version": version, "kind": kind}
        paths[f"{scope}/{info.plural}/{{name}}/{name}"] = {
            "parameters": named,
            "get": _operation(info, "get", ref, sub_gvk),
            "put": _operation(info, "put", ref, sub_gvk, body=True),
            "patch": _operation(info, "patch", ref, sub_gvk, patch=True)}
    return paths


def _common_schemas() -> dict:
    return {
        PATCH: {"type": "object", "description": "a patch in one of the patch content types"},
        STATUS: {"type": "object", **PRESERVE},
        SCALE: {"type": "object", "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"},
            "metadata": to_openapi(s.OBJECT_META),
            "spec": {"type": "object", "properties": {
                "replicas": {"type": "integer", "format": "int32"}}},
            "status": {"type": "object", "properties": {
                "replicas": {"type": "integer", "format": "int32"},
                "selector": {"type": "string"}}}},
            "x-kubernetes-group-version-kind": [
                {"group": "autoscaling", "version": "v1", "kind": "Scale"}]},
    }


@functools.cache
def document(api_version: str) -> bytes | None:
    infos = group_versions().get(api_version)
    if infos is None:
        return None
    schemas = _common_schemas()
    paths: dict[str, Any] = {}
    for info in infos:
        schemas[schema_name(info)] = _kind_schema(info)
        schemas[schema_name(info, f"{info.kind}List")] = {
            "type": "object", "required": ["items"],
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "metadata": {"type": "object", **PRESERVE},
                           "items": {"type": "array", "items": _ref(schema_name(info))}},
            "x-kubernetes-group-version-kind": [
                {**_gvk(info), "kind": f"{info.kind}List"}]}
        paths.update(_paths(info))
    doc = {"openapi": "3.0.0",
           "info": {"title": "tinykube", "version": "v1.37.0"},
           "paths": paths, "components": {"schemas": schemas}}
    return json.dumps(doc, sort_keys=True).encode()


def _url_path(api_version: str) -> str:
    return f"apis/{api_version}" if "/" in api_version else f"api/{api_version}"


@functools.cache
def index() -> bytes:
    paths = {}
    for api_version in group_versions():
        digest = hashlib.sha512(document(api_version) or b"").hexdigest()[:64].upper()
        paths[_url_path(api_version)] = {
            "serverRelativeURL": f"/openapi/v3/{_url_path(api_version)}?hash={digest}"}
    return json.dumps({"paths": paths}).encode()


def answer(path: str) -> bytes | None:
    """The OpenAPI document at `path` (JSON bytes), or None when it is not one of ours."""
    path = "/" + path.strip("/")
    if path == "/openapi/v3":
        return index()
    for api_version in group_versions():
        if path == f"/openapi/v3/{_url_path(api_version)}":
            return document(api_version)
    return None
