"""API errors, shaped like Kubernetes' `Status` objects.

Every layer raises these; the API server turns them into HTTP responses with `.status()`
and the client turns such a response back into the same class (`from_status`), so the
CLI prints the same message a user would see from kubectl.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One problem with one field: `path` like `spec.template.spec.containers[0].name`."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    # Constructors for Kubernetes' standard message shapes (field.ErrorType in apimachinery).
    @classmethod
    def invalid(cls, path: str, value: Any, detail: str) -> FieldError:
        return cls(path, f"Invalid value: {render_value(value)}: {detail}")

    @classmethod
    def required(cls, path: str, detail: str = "") -> FieldError:
        return cls(path, "Required value" + (f": {detail}" if detail else ""))

    @classmethod
    def unsupported(cls, path: str, value: Any, allowed: list[str]) -> FieldError:
        choices = ", ".join(f'"{a}"' for a in allowed)
        return cls(path, f"Unsupported value: {render_value(value)}: supported values: {choices}")

    @classmethod
    def duplicate(cls, path: str, value: Any) -> FieldError:
        return cls(path, f"Duplicate value: {render_value(value)}")

    @classmethod
    def forbidden(cls, path: str, detail: str) -> FieldError:
        return cls(path, f"Forbidden: {detail}")

    @classmethod
    def too_long(cls, path: str, value: Any, limit: int) -> FieldError:
        return cls(path, f"Too long: may not be more than {limit} bytes")

    @classmethod
    def unknown_field(cls, path: str) -> FieldError:
        return cls(path, "unknown field")


def render_value(value: Any) -> str:
    """A value as Kubernetes prints it in field errors: strings quoted, maps as {...}."""
    import json

    if isinstance(value, str):
        text = json.dumps(value)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, (int, float)):
        text = repr(value)
    elif isinstance(value, dict):
        try:
            text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
        except (ValueError, RecursionError):
            text = "{...}"
    else:
        try:
            text = json.dumps(value, default=str)
        except (ValueError, RecursionError):
            text = "[...]"
    # Keep messages readable when someone submits a megabyte string.
    return text if len(text) <= 200 else text[:197] + "..."


class ApiError(Exception):
    """Base of all API errors: an HTTP `code`, a Kubernetes `reason`, a human message."""

    code: int = 500
    reason: str = "InternalError"

    def __init__(self, message: str, *, code: int | None = None, reason: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if reason is not None:
            self.reason = reason
        self.details = details

    def status(self) -> dict[str, Any]:
        """The Kubernetes `Status` object for this error."""
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


def _plural(kind: str) -> str:
    from tinykube.model.kinds import find  # local import: kinds is a sibling leaf module

    info = find(kind)
    return info.plural if info else kind.lower()


def _details(kind: str | None, name: str | None, group: str | None = None) -> dict[str, Any]:
    # Kubernetes puts the resource (plural, lower case) in details.kind.
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if kind:
        details["kind"] = _plural(kind)
    return details


def _qualified(kind: str, group: str | None) -> str:
    """`pods`, `deployments.apps`: the resource name Kubernetes prints in messages."""
    if group is None:
        from tinykube.model.kinds import find

        info = find(kind)
        group = info.group if info else None
    resource = _plural(kind)
    return f"{resource}.{group}" if group else resource


class NotFound(ApiError):
    code = 404
    reason = "NotFound"

    @classmethod
    def for_object(cls, kind: str, name: str, group: str | None = None) -> NotFound:
        return cls(f'{_qualified(kind, group)} "{name}" not found',
                   details=_details(kind, name, group))


class AlreadyExists(ApiError):
    code = 409
    reason = "AlreadyExists"

    @classmethod
    def for_object(cls, kind: str, name: str, group: str | None = None) -> AlreadyExists:
        return cls(f'{_qualified(kind, group)} "{name}" already exists',
                   details=_details(kind, name, group))


class Conflict(ApiError):
    code = 409
    reason = "Conflict"

    @classmethod
    def for_object(cls, kind: str, name: str, group: str | None = None,
                   why: str = "the object has been modified; please apply your changes "
                              "to the latest version and try again") -> Conflict:
        return cls(f'Operation cannot be fulfilled on {_qualified(kind, group)} "{name}": {why}',
                   details=_details(kind, name, group))


class BadRequest(ApiError):
    code = 400
    reason = "BadRequest"


class InsufficientStorage(ApiError):
    """507: the disk under the store is full (Kubernetes answers etcd's "database space
    exceeded" likewise with a server error that says so)."""

    code = 507
    reason = "InsufficientStorage"


class Gone(ApiError):
    code = 410
    reason = "Expired"


class Invalid(ApiError):
    """422: the object failed validation; `errors` lists every field problem found."""

    code = 422
    reason = "Invalid"

    def __init__(self, kind: str, name: str, errors: list[FieldError], *,
                 group: str | None = None) -> None:
        if group is None:
            from tinykube.model.kinds import find

            info = find(kind)
            group = info.group if info and info.group else None
        self.kind = kind
        self.name = name
        self.group = group
        self.errors = list(errors)
        qualified = f"{kind}.{group}" if group else kind
        if len(self.errors) == 1:
            summary = str(self.errors[0])
        else:
            summary = "[" + ", ".join(str(e) for e in self.errors) + "]"
        message = f'{qualified} "{name}" is invalid: {summary}'
        super().__init__(message, details={
            "name": name,
            **({"group": group} if group else {}),
            "kind": kind,
            "causes": [{"reason": "FieldValueInvalid", "message": e.message, "field": e.path}
                       for e in self.errors],
        })


    @classmethod
    def for_object(cls, obj: Any, errors: list[FieldError]) -> Invalid:
        """Invalid about a (possibly malformed) object dict."""
        kind = obj.get("kind") if isinstance(obj, dict) else None
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        return cls(kind if isinstance(kind, str) else "Object",
                   name if isinstance(name, str) else "", errors)


_BY_REASON: dict[str, type[ApiError]] = {
    cls.reason: cls for cls in (NotFound, AlreadyExists, Conflict, BadRequest, Gone,
                                InsufficientStorage)
}


def from_status(status: dict[str, Any]) -> ApiError:
    """Rebuild an `ApiError` from a `Status` dict (the client side of `.status()`)."""
    reason = str(status.get("reason") or "InternalError")
    message = str(status.get("message") or reason)
    code = int(status.get("code") or 500)
    details = status.get("details") if isinstance(status.get("details"), dict) else None
    if reason == "Invalid" and details is not None:
        err = Invalid.__new__(Invalid)
        ApiError.__init__(err, message, details=details)
        err.kind = str(details.get("kind", ""))
        err.name = str(details.get("name", ""))
        err.group = details.get("group")
        err.errors = [FieldError(str(c.get("field", "")), str(c.get("message", "")))
                      for c in details.get("causes", []) if isinstance(c, dict)]
        return err
    cls = _BY_REASON.get(reason, ApiError)
    return cls(message, code=code, reason=reason, details=details)
