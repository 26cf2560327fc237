"""ConfigMap and Secret (v1): validation with Kubernetes' messages, stringData folded into
base64 data, immutability, the API (create, apply, update), tables and describe."""

import base64

import pytest
import trio

from tinykube.api import tables
from tinykube.cli import describe, printing
from tinykube.model import configdata
from tinykube.model.defaults import apply_defaults
from tinykube.model.errors import ApiError
from tinykube.model.kinds import lookup
from tinykube.model.validation import validate, validate_update


def cm(data=None, **extra):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
            "data": data if data is not None else {"greeting": "hello"}, **extra}


def secret(**extra):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, **extra}


def b64(text):
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def messages(obj):
    return [str(e) for e in validate(apply_defaults(obj))]


def test_kinds_resolve_by_short_name():
    assert lookup("cm").kind == "ConfigMap" and lookup("secrets").kind == "Secret"


def test_a_valid_config_map_and_secret_pass():
    assert messages(cm(binaryData={"blob": b64(b"\x00\x01")})) == []
    assert messages(secret(data={"password": b64("s3cr3t")})) == []


@pytest.mark.parametrize("key, expected", [
    ("bad key", "a valid config key must consist of alphanumeric characters"),
    ("..hidden", "must not start with '..'"),
    (".", "must not be '.'"),
    ("k" * 254, "must be no more than 253 characters"),
])
def test_bad_keys_name_the_key(key, expected):
    for obj, path in ((cm({key: "v"}), f"data[{key}]"),
                      (secret(data={key: b64("v")}), f"data[{key}]"),
                      (secret(stringData={key: "v"}), f"data[{key}]")):
        found = messages(obj)
        assert any(m.startswith(path) and expected in m for m in found), found


def test_a_key_in_data_and_binary_data_is_a_duplicate():
    found = messages(cm({"k": "v"}, binaryData={"k": b64("v")}))
    assert any("binaryData[k]" in m and "duplicate of key present in data" in m
               for m in found), found


def test_more_than_one_mebibyte_is_too_long():
    assert any("Too long: may not be more than 1048576 bytes" in m
               for m in messages(cm({"big": "x" * (1024 * 1024)})))
    assert any("Too long" in m for m in messages(
        secret(data={"big": b64(b"x" * (1024 * 1024))})))
    assert messages(cm({"big": "x" * (1024 * 1024 - 10)})) == []


def test_secret_data_must_be_base64_and_the_value_is_not_echoed():
    found = messages(secret(data={"password": "not base64!"}))
    assert any("data[password]" in m and "illegal base64 data at input byte 3" in m
               for m in found), found
    assert not any("not base64!" in m for m in found)


def test_a_secret_value_of_the_wrong_type_is_not_echoed():
    found = messages(secret(stringData={"pin": 987654}))
    assert found == ["stringData[pin]: Invalid value: must be a string"], found


def test_string_data_is_merged_into_data_as_base64_and_wins():
    obj = apply_defaults(secret(data={"user": b64("old"), "keep": b64("k")},
                                stringData={"user": "admin"}))
    assert obj["data"] == {"user": b64("admin"), "keep": b64("k")}
    assert "stringData" not in obj and obj["type"] == "Opaque"
    assert configdata.content(obj) == {"user": b"admin", "keep": b"k"}


def test_typed_secrets_need_their_keys():
    found = messages(secret(type="kubernetes.io/tls", data={"tls.crt": b64("c")}))
    assert found == ["data[tls.key]: Required value"], found


def test_immutable_objects_keep_their_content_and_stay_immutable():
    old = apply_defaults(cm(immutable=True))
    changed = apply_defaults(cm({"greeting": "bye"}, immutable=True))
    assert [str(e) for e in validate_update(old, changed)] == [
        "data: Forbidden: field is immutable when `immutable` is set"]
    unset = apply_defaults(cm())
    assert [str(e) for e in validate_update(old, unset)] == [
        "immutable: Forbidden: field is immutable when `immutable` is set"]
    assert validate_update(apply_defaults(cm()), changed) == []


def test_a_secret_type_never_changes():
    old = apply_defaults(secret(data={"a": b64("1")}))
    new = apply_defaults(secret(data={"a": b64("1")}, type="example.com/x"))
    assert [str(e) for e in validate_update(old, new)] == [
        'type: Invalid value: "example.com/x": field is immutable']


def test_unknown_top_level_fields_are_refused():
    assert any("spec: unknown field" in m for m in messages(cm(spec={})))


def test_tables_count_data_and_show_the_secret_type():
    objs = [apply_defaults(cm({"a": "1"}, binaryData={"b": b64("2")})),
            apply_defaults(secret(data={"a": b64("1")}))]
    assert printing.COLUMNS["ConfigMap"][1](objs[0]) == ["2"]
    assert printing.COLUMNS["Secret"][1](objs[1]) == ["Opaque", "1"]
    assert [c["name"] for c in tables.columns("Secret")] == ["Name", "Type", "Data", "Age"]


class NoRelated:
    def events(self, obj):
        return []

    def list(self, kind, namespace, selector=None):
        return []


def test_describe_shows_config_values_and_only_secret_sizes():
    config = apply_defaults(cm({"greeting": "hello"}))
    config["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"greeting":"hello"}}'}
    text = describe.describe(config, NoRelated())
    assert "Data\n====\ngreeting:\n----\nhello\n" in text and "Annotations:  <none>" in text
    hidden = apply_defaults(secret(stringData={"password": "s3cr3t-value"}))
    hidden["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": '{"stringData":{"password":'
                                                             '"s3cr3t-value"}}'}
    text = describe.describe(hidden, NoRelated())
    assert "password:  12 bytes" in text and "Type:  Opaque" in text
    assert "s3cr3t-value" not in text and b64("s3cr3t-value") not in text


async def call(fn, *args, **kwargs):
    return await trio.to_thread.run_sync(lambda: fn(*args, **kwargs))


async def test_api_create_apply_update_and_immutability(api):
    store, client, _ = api
    assert (await call(client.apply, cm({"a": "1"})))[0] == "created"
    assert (await call(client.apply, cm({"a": "1"})))[0] == "unchanged"
    assert (await call(client.apply, cm({"b": "2"})))[0] == "configured"
    stored = await call(client.get, "ConfigMap", "cfg")
    assert stored["data"] == {"b": "2"} and "spec" not in stored
    created = await call(client.create, secret(stringData={"token": "abc"}))
    assert created["data"] == {"token": b64("abc")} and "stringData" not in created
    frozen = await call(client.create, dict(cm({"x": "1"}, immutable=True),
                                            metadata={"name": "frozen"}))
    frozen["data"] = {"x": "2"}
    rv = store.resource_version
    with pytest.raises(ApiError) as err:
        await call(client.update, frozen)
    assert err.value.code == 422 and "field is immutable when `immutable` is set" in str(
        err.value.message)
    assert store.resource_version == rv


async def test_server_side_apply_owns_data_keys(api):
    _, client, _ = api

    def ssa(body, manager="me"):
        return client.request("PATCH", "/api/v1/namespaces/default/configmaps/cfg",
                              params={"fieldManager": manager}, body=body,
                              content_type="application/apply-patch+yaml")
    await call(ssa, cm({"a": "1", "b": "2"}))
    await call(ssa, cm({"a": "1"}))  # this manager stopped applying `b`: it goes
    assert (await call(client.get, "ConfigMap", "cfg"))["data"] == {"a": "1"}
    with pytest.raises(ApiError) as err:
        await call(ssa, cm({"a": "other"}), "someone-else")
    assert err.value.code == 409 and ".data.a" in str(err.value.message)


async def test_deleting_a_namespace_deletes_its_config_maps_and_secrets(api):
    store, client, _ = api
    for obj in (cm(), secret(stringData={"a": "1"})):
        obj["metadata"]["namespace"] = "team"
        await call(client.create, obj)
    await call(client.request, "DELETE", "/api/v1/namespaces/team")
    assert store.list("ConfigMap", "team") == [] and store.list("Secret", "team") == []


async def test_the_store_file_holding_secrets_is_root_only(api):
    store, client, _ = api
    await call(client.create, secret(stringData={"a": "1"}))
    for path in store.path.parent.glob(store.path.name + "*"):
        assert path.stat().st_mode & 0o077 == 0, path
