"""`fieldValidation=Strict|Warn|Ignore`: what a write does with fields the schema does not
know. Strict refuses them (400, `strict decoding error: unknown field "…"`, what kubectl
asks for by default), Warn drops them and says so in `Warning` headers, Ignore drops them
silently. Without the parameter tinykube keeps its own default: unknown fields are invalid
(422), as `tinykube apply` has always reported them.

The mode is per request (a context variable set by the router), so the one place every
written object passes through (`_checked_body`) can apply it.
"""

from __future__ import annotations

import contextvars
from typing import Any

from tinykube.model import schema
from tinykube.model.errors import BadRequest

MODES = ("Strict", "Warn", "Ignore")
_mode: contextvars.ContextVar[str | None] = contextvars.ContextVar("fieldValidation",
                                                                   default=None)
_warnings: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "fieldValidationWarnings", default=None)


def begin(query: dict[str, str]) -> None:
    """Set this request's mode (400 for an unknown one)."""
    mode = query.get("fieldValidation") or None
    if mode is not None and mode not in MODES:
        raise BadRequest(f'fieldValidation: Unsupported value: "{mode}": supported values: '
                         '"Ignore", "Strict", "Warn"')
    _mode.set(mode)
    _warnings.set([])


def warnings() -> list[str]:
    return list(_warnings.get() or [])


def unknown_fields(value: Any, node: schema.Node, path: str = "", *,
                   remove: bool = False) -> list[str]:
    """Paths of fields `node` does not know (removed from `value` when `remove`)."""
    found: list[str] = []
    if isinstance(node, schema.Obj) and isinstance(value, dict):
        for key in list(value):
            child = node.fields.get(key) if isinstance(key, str) else None
            where = f"{path}.{key}" if path else str(key)
            if child is None:
                found.append(where)
                if remove:
                    del value[key]
            else:
                found += unknown_fields(value[key], child, where, remove=remove)
    elif isinstance(node, schema.ListOf) and isinstance(value, list):
        for i, item in enumerate(value):
            found += unknown_fields(item, node.item, f"{path}[{i}]", remove=remove)
    elif isinstance(node, schema.MapOf) and isinstance(value, dict):
        for key, item in value.items():
            found += unknown_fields(item, node.value, f"{path}[{key}]", remove=remove)
    return found


def check(obj: dict) -> None:
    """Apply this request's mode to a whole object about to be validated and written."""
    mode = _mode.get()
    node = schema.SCHEMAS.get(obj.get("kind", ""))
    if mode is None or node is None:
        return
    unknown = unknown_fields(obj, node, remove=mode != "Strict")
    if not unknown:
        return
    if mode == "Strict":
        listed = ", ".join(f'unknown field "{p}"' for p in unknown)
        raise BadRequest(f'{obj.get("kind")} in version "{obj.get("apiVersion")}" cannot be '
                         f"handled as a {obj.get('kind')}: strict decoding error: {listed}")
    if mode == "Warn":
        collected = _warnings.get()
        if collected is not None:
            collected.extend(f'unknown field "{p}"' for p in unknown)
