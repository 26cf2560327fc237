"""Can a stored object be served? The check the store runs on every row it loads.

A store written by an older tinykube (before every write path was validated), edited by hand
or damaged may hold rows that are not JSON, objects without a name, or a `status` that is a
string. Served as is, one such object crashes whatever reads it (a list, a controller, the
next start). The store instead skips it, logs it with its key and reports it
(`/healthz`, `tinykube get`, `tinykube doctor`).

Checked: identity, the types of every field, and for the kinds users write the same
validation as the API: a pod without a container name passes type checks yet crashed the
kubelet at every start, and a ReplicaSet whose selector does not match its template makes
pods without end. Unknown fields are not held against a stored object. An object that
a later, stricter version rejects is reported the same way, never acted upon: the kubelet
leaves a pod whose row cannot load alone, and the garbage collector never collects the
dependents of an owner whose row cannot load.
"""

from __future__ import annotations

import json
from typing import Any

from tinykube.model import names, schema, validation
from tinykube.model.errors import FieldError
from tinykube.model.kinds import KINDS
from tinykube.model.meta import Obj

_KNOWN_KINDS = {k.kind: k for k in KINDS}
_USER_KINDS = frozenset(k.kind for k in KINDS if k.user)


def load_problems(kind: str, namespace: str, name: str, data: Any) -> tuple[Obj | None, str]:
    """(the object, "") when the row `data` stored under (kind, namespace, name) can be
    served; (None, why) otherwise."""
    try:
        obj = json.loads(data)
    except (TypeError, ValueError, RecursionError) as e:
        return None, f"not valid JSON: {e}"
    why = identity_problem(obj, (kind, namespace, name))
    if why:
        return None, why
    for error in _type_errors(obj) or _value_errors(obj):
        return None, str(error)
    return obj, ""


def identity_problem(obj: Any, key: tuple[str, str, str] | None = None) -> str:
    """Why `obj` cannot be addressed (kind, namespace, name), or ""."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    kind = obj.get("kind")
    if kind not in _KNOWN_KINDS:
        return f"kind: unknown kind {kind!r}"
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return "metadata: must be an object"
    name, namespace = meta.get("name"), meta.get("namespace")
    if not isinstance(name, str) or not name:
        return "metadata.name: Required value"
    messages = names.dns1123_subdomain(name)
    if messages:
        return f"metadata.name: Invalid value: {name!r}: {messages[0]}"
    if not isinstance(namespace, str) or names.dns1123_label(namespace):
        return f"metadata.namespace: Invalid value: {namespace!r}"
    uid = meta.get("uid")
    if not isinstance(uid, str) or not uid:
        return "metadata.uid: Required value"
    if key is not None and key != (kind, namespace, name):
        return f"stored under {'/'.join(key)} but names itself {kind}/{namespace}/{name}"
    for part in ("spec", "status"):
        if obj.get(part) is not None and not isinstance(obj[part], dict):
            return f"{part}: must be an object"
    return ""


def _type_errors(obj: Obj) -> list[FieldError]:
    kind = obj["kind"]
    errors: list[FieldError] = []
    top = schema.SCHEMAS.get(kind)
    if top is not None:
        body = {k: v for k, v in obj.items() if k != "status"}
        errors += schema.check(top, body).structural
    errors += schema.check_status(kind, obj.get("status")).structural
    return [e for e in errors if e.message != "unknown field"]


def _value_errors(obj: Obj) -> list[FieldError]:
    if obj["kind"] not in _USER_KINDS:
        return []  # written by tinykube itself (ControllerRevision): sound types suffice
    body = {k: v for k, v in obj.items() if k != "status"}
    return [e for e in validation.validate(body) if e.message != "unknown field"]
