"""`POST /api/v1/namespaces/{ns}/events`: Events that agents' kubelets report (pod started,
probe failed, killed...), checked as Kubernetes' event validation does and recorded (and
counted per series) by the store, like the events tinykube's own components record."""

from __future__ import annotations

from typing import Any

from tinykube.model.errors import BadRequest, FieldError, Invalid

EVENT_TYPES = ("Normal", "Warning")
MAX_REASON = 128
MAX_MESSAGE = 4096


def admitted(body: Any, namespace: str) -> tuple[dict, str, str, str, str, str | None]:
    """(the involved object as the store names it, type, reason, message, source component,
    source host) of a posted Event; 400/422 naming the field otherwise."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    if body.get("kind") != "Event" or body.get("apiVersion") != "v1":
        raise BadRequest(f"kind/apiVersion: {body.get('kind')!r}/{body.get('apiVersion')!r}: "
                         "this path takes v1 Events")
    errors: list[FieldError] = []
    meta: dict[str, Any] = body["metadata"] if isinstance(body.get("metadata"), dict) else {}
    if meta.get("namespace") not in (None, namespace):
        errors.append(FieldError.invalid("metadata.namespace", meta.get("namespace"),
                                         f"does not match the request's namespace {namespace}"))
    involved = body.get("involvedObject")
    if not isinstance(involved, dict):
        errors.append(FieldError("involvedObject", "Required value"))
        involved = {}
    for field in ("kind", "name"):
        if not isinstance(involved.get(field), str) or not involved.get(field):
            errors.append(FieldError(f"involvedObject.{field}", "Required value"))
    if involved.get("namespace") not in (None, "", namespace):
        errors.append(FieldError.invalid("involvedObject.namespace", involved.get("namespace"),
                                         "does not match event.namespace"))
    type_ = body.get("type") or "Normal"
    if type_ not in EVENT_TYPES:
        errors.append(FieldError.invalid("type", type_, "must be Normal or Warning"))
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason or len(reason) > MAX_REASON:
        errors.append(FieldError.invalid("reason", reason, f"must be 1 to {MAX_REASON} "
                                                           "characters"))
    message = body.get("message") or ""
    if not isinstance(message, str) or len(message) > MAX_MESSAGE:
        errors.append(FieldError.invalid("message", "...", f"must be text of at most "
                                                           f"{MAX_MESSAGE} characters"))
    source: dict[str, Any] = body["source"] if isinstance(body.get("source"), dict) else {}
    component = source.get("component") or "kubelet"
    if not isinstance(component, str):
        errors.append(FieldError.invalid("source.component", component, "must be a string"))
    host = source.get("host") or None
    if host is not None and not isinstance(host, str):
        errors.append(FieldError.invalid("source.host", host, "must be a string"))
    if errors:
        raise Invalid.for_object({"kind": "Event", "metadata": {"name": meta.get("name", "")}},
                                 errors)
    obj = {"kind": involved["kind"], "apiVersion": involved.get("apiVersion"),
           "metadata": {"name": involved["name"], "namespace": namespace,
                        "uid": involved.get("uid")}}
    return obj, str(type_), str(reason), str(message), str(component), host
