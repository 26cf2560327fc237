"""Request bodies in YAML (`application/yaml`, `application/apply-patch+yaml`), read like
manifests; JSON stays the API server's own job."""

from __future__ import annotations

from typing import Any

from tinykube.model.errors import BadRequest
from tinykube.model.manifests import ManifestError, load_document

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml",
              "application/apply-patch+yaml")


def is_yaml(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() in YAML_TYPES


def load_yaml(body: bytes) -> Any:
    if not body:
        raise BadRequest("request body is empty")
    try:
        return load_document(body)
    except ManifestError as e:
        raise BadRequest(f"request body is not valid YAML: {e}") from None
