"""Manifest loading (stub; implementation follows)."""

from typing import Any


def load_manifests(text: str, source_name: str = "<stdin>") -> list[dict[str, Any]]:
    raise NotImplementedError
