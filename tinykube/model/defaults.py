"""Kubernetes defaulting (stub; implementation follows)."""

from typing import Any


def apply_defaults(obj: dict[str, Any]) -> dict[str, Any]:
    """Fill in defaults in place (and return obj)."""
    return obj
