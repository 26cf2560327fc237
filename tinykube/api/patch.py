"""PATCH bodies by content type: JSON merge patch (RFC 7386), JSON Patch (RFC 6902, the
`jsonpatch` library) and Kubernetes' strategic merge patch; 415 for anything else.

Strategic merge patch follows the kind's schema (`tinykube.model.schema`): a list whose
schema node declares a merge key (containers by `name`, ports by `containerPort`, ...) is
merged item by item; a list with patch strategy `merge` and no key (finalizers) is a set
union; every other list is replaced. The directives `$patch` (replace/delete/merge),
`$setElementOrder/<list>`, `$retainKeys` and `$deleteFromPrimitiveList/<list>` are honoured.
The result is validated like any other write, so a directive left over is an unknown field.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch

from tinykube.model import schema
from tinykube.model.errors import ApiError, BadRequest

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
SUPPORTED = (JSON_PATCH, MERGE, STRATEGIC)


class _Delete:
    """What a `$patch: delete` map merges into: remove the field or list item."""


DELETE = _Delete()


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def unsupported(content_type: str) -> ApiError:
    supported = ", ".join((*SUPPORTED, APPLY))
    return ApiError(f"the body of the request was in an unknown format - accepted media types "
                    f"include: {supported}", code=415, reason="UnsupportedMediaType")


def apply_patch(current: dict, content_type: str | None, patch: Any,
                node: schema.Node | None = None) -> Any:
    """`current` patched by `patch` (already decoded JSON) of the given content type.
    A missing Content-Type means a merge patch (what tinykube's own client always sent)."""
    kind = media_type(content_type)
    if kind in ("", MERGE):
        return merge_patch(current, patch)
    if kind == JSON_PATCH:
        return json_patch(current, patch)
    if kind == STRATEGIC:
        if not isinstance(patch, dict):
            raise BadRequest("a strategic merge patch must be a JSON object")
        result = strategic_merge(current, patch, node or schema.AnyValue())
        return {} if result is DELETE else result
    raise unsupported(kind)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(current: dict, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise BadRequest("a JSON patch must be a list of operations")
    try:
        return jsonpatch.JsonPatch(operations).apply(copy.deepcopy(current))
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
        raise ApiError(f"the JSON patch could not be applied: {e}", code=422,
                       reason="Invalid") from None
    except (TypeError, KeyError, AttributeError, ValueError) as e:
        raise BadRequest(f"the JSON patch is malformed: {e}") from None


# ---- strategic merge patch ----------------------------------------------------------------

def _strip(value: Any) -> Any:
    """A new value from a patch: its directives mean nothing without an original."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items()
                if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_strip(v) for v in value if not (isinstance(v, dict) and "$patch" in v)]
    return copy.deepcopy(value)


def strategic_merge(original: Any, patch: dict, node: schema.Node) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return DELETE
    if directive == "replace":
        return _strip({k: v for k, v in patch.items() if k != "$patch"})
    if directive not in (None, "merge"):
        raise BadRequest(f"$patch: Unsupported value: {json.dumps(directive)}: supported "
                         'values: "replace", "merge", "delete"')
    result = copy.deepcopy(original) if isinstance(original, dict) else {}
    orders: dict[str, list] = {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        child = schema.child(node, key)
        if isinstance(value, dict):
            merged = strategic_merge(result.get(key), value, child)
            if merged is DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list) and isinstance(child, schema.ListOf) and \
                "merge" in (child.patch_strategy or ""):
            result[key] = _merge_list(result.get(key), value, child)
        else:
            result[key] = _strip(value)
    for field, order in orders.items():
        node_for = schema.child(node, field)
        key = node_for.merge_key if isinstance(node_for, schema.ListOf) else None
        if isinstance(result.get(field), list) and isinstance(order, list):
            result[field] = _ordered(result[field], order, key)
    if isinstance(retain, list):
        for key in list(result):
            if key not in retain:
                del result[key]
    return result


def _merge_list(original: Any, patch: list, node: schema.ListOf) -> list:
    result = copy.deepcopy(original) if isinstance(original, list) else []
    key = node.merge_key
    if {"$patch": "replace"} in patch:  # the marker item: this list replaces the old one
        return [_strip(item) for item in patch if item != {"$patch": "replace"}]
    if key is None:  # a set of primitives
        for item in patch:
            if item not in result:
                result.append(copy.deepcopy(item))
        return result
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise BadRequest(f"strategic merge patch: a list item lacks its merge key "
                             f"{key!r}: {json.dumps(item)[:200]}")
        index = next((i for i, old in enumerate(result)
                      if isinstance(old, dict) and old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
            continue
        merged = strategic_merge(result[index] if index is not None else None, item, node.item)
        if index is None:
            result.append(merged)
        else:
            result[index] = merged
    return result


def _ordered(items: list, order: list, key: str | None) -> list:
    """Items named in `order` first, in its order; the rest after, as they were."""
    def identity(item: Any) -> Any:
        return json.dumps(item.get(key) if key and isinstance(item, dict) else item,
                          sort_keys=True)

    wanted = [identity(o) for o in order]
    rank = {name: i for i, name in enumerate(wanted)}
    named = sorted((i for i in items if identity(i) in rank), key=lambda i: rank[identity(i)])
    return named + [i for i in items if identity(i) not in rank]
