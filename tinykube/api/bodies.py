"""Request bodies in YAML (`application/yaml`, `application/apply-patch+yaml`), read like
manifests; JSON stays the API server's own job."""

from __future__ import annotations

from typing import Any

from tinykube.model.errors import ApiError, BadRequest
from tinykube.model.manifests import ManifestError, load_document

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml",
              "application/apply-patch+yaml")


# Bodies read as JSON: no Content-Type at all (accepted, as curl users expect), JSON, and
# the JSON patch types. Protobuf and CBOR are not spoken: 415, so clients fall back to JSON.
JSON_TYPES = ("", "application/json", "application/merge-patch+json",
              "application/json-patch+json", "application/strategic-merge-patch+json")


def check_json(content_type: str | None) -> None:
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in JSON_TYPES:
        raise ApiError(f'the body of the request was in an unknown format - accepted media '
                       f'types include: application/json, application/yaml (not "{media}")',
                       code=415, reason="UnsupportedMediaType")


def is_yaml(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() in YAML_TYPES


def load_yaml(body: bytes) -> Any:
    if not body:
        raise BadRequest("request body is empty")
    try:
        return load_document(body)
    except ManifestError as e:
        raise BadRequest(f"request body is not valid YAML: {e}") from None
