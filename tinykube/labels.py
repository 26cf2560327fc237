"""Label selectors (stub; implementation follows). See docs/CONTRACTS.md."""

from __future__ import annotations

from typing import Any

from tinykube.model.errors import FieldError


class Selector:
    def matches(self, labels: dict[str, str] | None) -> bool:
        raise NotImplementedError

    @property
    def empty(self) -> bool:
        raise NotImplementedError


def parse(text: str) -> Selector:
    raise NotImplementedError


def from_label_selector(sel: dict[str, Any] | None) -> Selector:
    raise NotImplementedError


def from_map(labels: dict[str, str] | None) -> Selector:
    raise NotImplementedError


def validate_labels(labels: Any, path: str) -> list[FieldError]:
    raise NotImplementedError


def validate_label_selector(sel: Any, path: str) -> list[FieldError]:
    raise NotImplementedError
