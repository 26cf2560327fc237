"""ConfigMap and Secret content: Kubernetes' key rule, size limit, base64, immutability.

Both kinds carry their content at the top level (`data`, `binaryData`; a Secret's `data` is
base64). The API server's defaulting has already folded a Secret's `stringData` into `data`
(model/defaults.py) when these checks run. Messages never include a Secret's values.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from tinykube.model.errors import FieldError

MAX_SIZE = 1024 * 1024  # v1.MaxSecretSize, also the ConfigMap limit
MAX_KEY_LENGTH = 253
_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# kubernetes.io/* Secret types and the key each must have (ValidateSecret).
REQUIRED_SECRET_KEYS = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
}


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def key_errors(key: str) -> list[str]:
    """IsConfigMapKey: what is wrong with a ConfigMap/Secret key ([] when valid)."""
    errors = []
    if len(key) > MAX_KEY_LENGTH:
        errors.append(f"must be no more than {MAX_KEY_LENGTH} characters")
    if not _KEY.fullmatch(key):
        errors.append("a valid config key must consist of alphanumeric characters, '-', '_' or "
                      "'.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
                      "validation is '[-._a-zA-Z0-9]+')")
    if key == ".":
        errors.append("must not be '.'")
    elif key == "..":
        errors.append("must not be '..'")
    elif key.startswith(".."):
        errors.append("must not start with '..'")
    return errors


def _keys(mapping: dict[str, Any], path: str) -> list[FieldError]:
    errors = []
    for key in mapping:
        messages = key_errors(key)
        if messages:
            errors.append(FieldError.invalid(f"{path}[{key}]", key, "; ".join(messages)))
    return errors


def decode(value: str) -> bytes:
    """Strict standard base64, as Go's encoding/json decodes []byte; ValueError naming the
    byte where it breaks (never the value)."""
    match = _BASE64.match(value)
    end = match.end() if match else 0
    if end != len(value) or len(value) % 4:
        raise ValueError(f"illegal base64 data at input byte {min(end, len(value))}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"illegal base64 data at input byte {len(value)}") from None


def _base64_errors(mapping: dict[str, Any], path: str) -> list[FieldError]:
    errors = []
    for key, value in mapping.items():
        if isinstance(value, str):
            try:
                decode(value)
            except ValueError as e:
                errors.append(FieldError(f"{path}[{key}]", f"Invalid value: {e}"))
    return errors


def validate_config_map(obj: dict[str, Any]) -> list[FieldError]:
    data, binary = _d(obj.get("data")), _d(obj.get("binaryData"))
    errors = _keys(data, "data") + _keys(binary, "binaryData")
    errors += _base64_errors(binary, "binaryData")
    for key in binary:
        if key in data:
            errors.append(FieldError.invalid(f"binaryData[{key}]", key,
                                             "duplicate of key present in data"))
    size = sum(len(k) + len(v.encode()) for k, v in data.items() if isinstance(v, str))
    size += sum(len(k) + _decoded_size(v) for k, v in binary.items())
    if size > MAX_SIZE:
        errors.append(FieldError.too_long("data", "", MAX_SIZE))
    return errors


def validate_secret(obj: dict[str, Any]) -> list[FieldError]:
    data = _d(obj.get("data"))
    errors = _keys(data, "data") + _keys(_d(obj.get("stringData")), "stringData")
    errors += _base64_errors(data, "data")
    size = sum(len(k) + _decoded_size(v) for k, v in data.items())
    if size > MAX_SIZE:
        errors.append(FieldError.too_long("data", "", MAX_SIZE))
    for key in REQUIRED_SECRET_KEYS.get(obj.get("type") or "", ()):
        if key not in data:
            errors.append(FieldError.required(f"data[{key}]"))
    return errors


def _decoded_size(value: Any) -> int:
    if not isinstance(value, str):
        return 0
    try:
        return len(decode(value))
    except ValueError:
        return len(value)


def validate_update(old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    """ValidateConfigMapUpdate / ValidateSecretUpdate: an immutable object stays so, and its
    content does not change; a Secret's type never changes."""
    errors = []
    if new.get("kind") == "Secret" and (old.get("type") or "Opaque") != (
            new.get("type") or "Opaque"):
        errors.append(FieldError.invalid("type", new.get("type"), "field is immutable"))
    if old.get("immutable") is True:
        if new.get("immutable") is not True:
            errors.append(FieldError.forbidden("immutable",
                                               "field is immutable when `immutable` is set"))
        for field in ("data", "binaryData"):
            if (old.get(field) or {}) != (new.get(field) or {}):
                errors.append(FieldError.forbidden(field,
                                                   "field is immutable when `immutable` is set"))
    return errors


def content(obj: dict[str, Any]) -> dict[str, bytes]:
    """The files a ConfigMap or Secret holds: key -> bytes (data decoded for Secrets,
    binaryData decoded for ConfigMaps)."""
    out: dict[str, bytes] = {}
    if obj.get("kind") == "Secret":
        for key, value in _d(obj.get("data")).items():
            out[key] = decode(value)
        return out
    for key, value in _d(obj.get("data")).items():
        out[key] = value.encode()
    for key, value in _d(obj.get("binaryData")).items():
        out[key] = decode(value)
    return out
