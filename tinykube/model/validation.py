"""Object validation (stub; implementation follows)."""

from typing import Any

from tinykube.model.errors import FieldError


def validate(obj: Any) -> list[FieldError]:
    return []


def validate_update(old: dict[str, Any], new: Any) -> list[FieldError]:
    return []
