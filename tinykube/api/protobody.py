"""Request bodies in Kubernetes' protobuf encoding, for the kinds whose typed clients send it.

kubectl's `create configmap` and `create secret …` use client-go's typed clientset, which
sends `application/vnd.kubernetes.protobuf` and does not fall back to JSON on a 415. This
decodes those bodies into the JSON shape the API server handles everywhere else: the
`k8s\\0` envelope (runtime.Unknown: typeMeta + raw), then the object by the field numbers of
k8s.io/api/core/v1/generated.proto. Answers stay JSON (the client reads by Content-Type).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

from tinykube.model.errors import ApiError, BadRequest

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"


def is_protobuf(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == MEDIA_TYPE


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise BadRequest("protobuf body: truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, varint value or length-delimited bytes); fixed-width fields skipped."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise BadRequest("protobuf body: truncated field")
            yield number, data[pos:pos + length]
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise BadRequest(f"protobuf body: unsupported wire type {wire}")


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise BadRequest("protobuf body: expected a string")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise BadRequest("protobuf body: a string is not UTF-8") from None


def _entry(value: int | bytes) -> tuple[str, bytes]:
    if not isinstance(value, bytes):
        raise BadRequest("protobuf body: expected a map entry")
    key, item = "", b""
    for number, part in _fields(value):
        if number == 1:
            key = _text(part)
        elif number == 2 and isinstance(part, bytes):
            item = part
    return key, item


Decoder = Callable[[int | bytes], Any]


def _message(spec: dict[int, tuple[str, Decoder, str]]) -> Decoder:
    """A decoder for one message: field number -> (JSON name, value decoder, how:
    "one", "list" or "map" (map values decoded by the decoder))."""
    def decode(value: int | bytes) -> dict[str, Any]:
        if not isinstance(value, bytes):
            raise BadRequest("protobuf body: expected a message")
        out: dict[str, Any] = {}
        for number, part in _fields(value):
            if number not in spec:
                continue
            name, item, how = spec[number]
            if how == "map":
                key, raw = _entry(part)
                out.setdefault(name, {})[key] = item(raw)
            elif how == "list":
                out.setdefault(name, []).append(item(part))
            else:
                decoded = item(part)
                if decoded not in ("", 0, False, None):  # proto sends Go's zero values:
                    out[name] = decoded  # JSON's omitempty leaves them out
        return out
    return decode


def _bool(value: int | bytes) -> bool:
    return bool(value)


def _int(value: int | bytes) -> int:
    if not isinstance(value, int):
        raise BadRequest("protobuf body: expected a number")
    return value - (1 << 64) if value >= 1 << 63 else value


def _b64(value: int | bytes) -> str:
    return base64.b64encode(value if isinstance(value, bytes) else b"").decode()


_OWNER = _message({1: ("kind", _text, "one"), 3: ("name", _text, "one"),
                   4: ("uid", _text, "one"), 5: ("apiVersion", _text, "one"),
                   6: ("controller", _bool, "one"), 7: ("blockOwnerDeletion", _bool, "one")})
_META = _message({
    1: ("name", _text, "one"), 2: ("generateName", _text, "one"),
    3: ("namespace", _text, "one"), 5: ("uid", _text, "one"),
    6: ("resourceVersion", _text, "one"), 7: ("generation", _int, "one"),
    10: ("deletionGracePeriodSeconds", _int, "one"),
    11: ("labels", _text, "map"), 12: ("annotations", _text, "map"),
    13: ("ownerReferences", _OWNER, "list"), 14: ("finalizers", _text, "list"),
})
KINDS: dict[str, Decoder] = {
    "ConfigMap": _message({1: ("metadata", _META, "one"), 2: ("data", _text, "map"),
                           3: ("binaryData", _b64, "map"), 4: ("immutable", _bool, "one")}),
    "Secret": _message({1: ("metadata", _META, "one"), 2: ("data", _b64, "map"),
                        3: ("type", _text, "one"), 4: ("stringData", _text, "map"),
                        5: ("immutable", _bool, "one")}),
}
_TYPE_META = _message({1: ("apiVersion", _text, "one"), 2: ("kind", _text, "one")})
_UNKNOWN = _message({1: ("typeMeta", _TYPE_META, "one"), 2: ("raw", lambda v: v, "one")})


def load(body: bytes) -> dict[str, Any]:
    """The object a protobuf body holds, as JSON; BadRequest for anything else."""
    try:
        if not body.startswith(MAGIC):
            raise BadRequest("protobuf body: missing the k8s envelope")
        envelope = _UNKNOWN(body[len(MAGIC):])
    except BadRequest:
        envelope = {}
    type_meta = envelope.get("typeMeta") or {}
    kind = type_meta.get("kind", "")
    decode = KINDS.get(kind)
    if decode is None:  # not one of ours (or not protobuf at all): JSON or YAML, please
        raise ApiError(f"the body of the request was in an unknown format - {kind or 'this'} "
                       f'objects are read as application/json or application/yaml (not '
                       f'"{MEDIA_TYPE}")', code=415, reason="UnsupportedMediaType")
    obj = decode(envelope.get("raw") or b"")
    return {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind, **obj}
