"""tinykube's object model: kinds, errors, quantities, defaults, validation, manifests.

Objects are plain dicts in Kubernetes' JSON shape; this package only knows their rules and
imports nothing else of tinykube's.
"""

from tinykube.model.errors import (
    AlreadyExists,
    ApiError,
    BadRequest,
    Conflict,
    FieldError,
    Gone,
    Invalid,
    NotFound,
)
from tinykube.model.kinds import KINDS, KindInfo, by_kind, by_plural, lookup

__all__ = [
    "KINDS",
    "AlreadyExists",
    "ApiError",
    "BadRequest",
    "Conflict",
    "FieldError",
    "Gone",
    "Invalid",
    "KindInfo",
    "NotFound",
    "by_kind",
    "by_plural",
    "lookup",
]
