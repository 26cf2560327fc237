"""Protobuf request bodies of typed clients (kubectl create configmap/secret): the k8s
envelope and the ConfigMap/Secret field numbers decode to the JSON shape."""

import pytest

from tinykube.api import protobody
from tinykube.model.errors import ApiError, BadRequest


def varint(n):
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def field(number, value):
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def entry(number, key, value):
    return field(number, field(1, key) + field(2, value))


def envelope(api_version, kind, raw):
    return protobody.MAGIC + field(1, field(1, api_version) + field(2, kind)) + field(2, raw)


def test_a_config_map_decodes_with_meta_and_zero_values_left_out():
    meta = field(1, "app") + field(3, "") + entry(11, "tier", "web")
    raw = field(1, meta) + entry(2, "greeting", "hello") + entry(3, "blob", b"\x00\x01")
    assert protobody.load(envelope("v1", "ConfigMap", raw)) == {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "app", "labels": {"tier": "web"}},
        "data": {"greeting": "hello"}, "binaryData": {"blob": "AAE="}}


def test_a_secret_decodes_bytes_as_base64():
    raw = field(1, field(1, "creds")) + entry(2, "pw", b"s3cr3t") + field(3, "Opaque") + \
        field(5, 1)
    assert protobody.load(envelope("v1", "Secret", raw)) == {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
        "data": {"pw": "czNjcjN0"}, "type": "Opaque", "immutable": True}


def test_other_kinds_and_broken_bodies_are_refused():
    with pytest.raises(ApiError) as err:
        protobody.load(envelope("v1", "Pod", b""))
    assert err.value.code == 415
    for broken in (b"nope", protobody.MAGIC + b"\x12\x05ab"):
        with pytest.raises(ApiError) as err:
            protobody.load(broken)
        assert err.value.code == 415
    truncated_config_map = envelope("v1", "ConfigMap", field(2, b"")[:-1] + b"\x05")
    with pytest.raises(BadRequest, match="truncated"):
        protobody.load(truncated_config_map)
