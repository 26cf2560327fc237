"""Server-side apply and YAML/untyped request bodies over a real socket."""

import http.client

import pytest
import yaml

from tests.unit.test_api import call, deployment
from tinykube.client import _UnixConnection
from tinykube.model.errors import ApiError

APPLY = "application/apply-patch+yaml"
PATH = "/apis/apps/v1/namespaces/default/deployments/web"


def ssa(client, body, manager, force=False):
    params = {"fieldManager": manager, **({"force": "true"} if force else {})}
    return client.request("PATCH", PATH, body=body, params=params, content_type=APPLY)


async def test_apply_creates_then_updates_and_records_managers(api):
    store, client, _ = api
    config = deployment()
    config["metadata"]["labels"]["owner"] = "alice"
    created = await call(ssa, client, config, "alice")
    assert created["metadata"]["uid"]
    (entry,) = created["metadata"]["managedFields"]
    assert entry["manager"] == "alice" and entry["operation"] == "Apply"
    assert entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"][
        'k:{"name":"c"}']["f:command"] == {}
    # alice stops applying a label she alone owned: it goes; her new value is set.
    del config["metadata"]["labels"]["owner"]
    config["spec"]["replicas"] = 3
    updated = await call(ssa, client, config, "alice")
    assert "owner" not in updated["metadata"]["labels"] and updated["spec"]["replicas"] == 3
    assert store.get("Deployment", "default", "web")["spec"]["replicas"] == 3
    again = await call(ssa, client, config, "alice")  # nothing changes: same version
    assert again["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]


async def test_conflicts_between_managers(api):
    store, client, _ = api
    await call(ssa, client, deployment(replicas=2), "alice")
    bob = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
           "spec": {"replicas": 5}}
    rv = store.resource_version
    with pytest.raises(ApiError) as err:
        await call(ssa, client, bob, "bob")
    assert err.value.code == 409 and 'conflict with "alice"' in err.value.message
    assert ".spec.replicas" in err.value.message and store.resource_version == rv
    same = dict(bob, spec={"replicas": 2})  # the same value is shared ownership, no conflict
    await call(ssa, client, same, "bob")
    forced = await call(ssa, client, bob, "bob", True)
    assert forced["spec"]["replicas"] == 5
    alice = next(e for e in forced["metadata"]["managedFields"] if e["manager"] == "alice")
    assert "f:replicas" not in alice["fieldsV1"]["f:spec"]  # bob took it over


async def test_apply_needs_a_field_manager(api):
    _, client, _ = api
    with pytest.raises(ApiError) as err:
        await call(client.request, "PATCH", PATH, body=deployment(), content_type=APPLY)
    assert err.value.code == 400 and "fieldManager" in err.value.message


def raw(socket, method, path, body, headers):
    conn = _UnixConnection(str(socket), 10)
    conn.request(method, path, body=body, headers=headers)
    response: http.client.HTTPResponse = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


async def test_yaml_and_untyped_bodies(api):
    store, _, socket = api
    collection = "/apis/apps/v1/namespaces/default/deployments"
    code, _ = await call(raw, socket, "POST", collection, yaml.safe_dump(deployment("y")),
                         {"Content-Type": "application/yaml"})
    assert code == 201 and store.try_get("Deployment", "default", "y")
    import json
    code, _ = await call(raw, socket, "POST", collection, json.dumps(deployment("n")), {})
    assert code == 201 and store.try_get("Deployment", "default", "n")  # no Content-Type
    code, data = await call(raw, socket, "PATCH", f"{collection}/z?fieldManager=m",
                            yaml.safe_dump(deployment("z")), {"Content-Type": APPLY})
    assert code == 201, data
    code, data = await call(raw, socket, "POST", collection, "a: [1\nb", {
        "Content-Type": "application/yaml"})
    assert code == 400 and b"not valid YAML" in data
    code, data = await call(raw, socket, "POST", collection, "a: 1\na: 2\n", {
        "Content-Type": "application/yaml"})
    assert code == 400


async def test_bodies_in_unspoken_formats_are_415(api):
    store, _, socket = api
    rv = store.resource_version
    for content_type in ("application/vnd.kubernetes.protobuf", "application/cbor", "text/xml"):
        code, data = await call(raw, socket, "POST", "/apis/apps/v1/namespaces/default/"
                                "deployments", b"k8s\x00\x0a", {"Content-Type": content_type})
        assert code == 415 and b"UnsupportedMediaType" in data
    assert store.resource_version == rv


def post(socket, query, body):
    import json
    conn = _UnixConnection(str(socket), 10)
    conn.request("POST", f"/apis/apps/v1/namespaces/default/deployments?{query}",
                 body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, response.getheader("warning"), json.loads(data)


async def test_field_validation_modes(api):
    store, _, socket = api
    def odd(name):
        obj = deployment(name)
        obj["spec"]["replicaz"] = 3
        obj["spec"]["template"]["spec"]["containers"][0]["colour"] = "red"
        return obj
    code, _, body = await call(post, socket, "fieldValidation=Strict", odd("s"))
    assert code == 400 and "strict decoding error: " in body["message"]
    assert 'unknown field "spec.replicaz"' in body["message"]
    assert 'unknown field "spec.template.spec.containers[0].colour"' in body["message"]
    assert store.try_get("Deployment", "default", "s") is None
    code, warning, body = await call(post, socket, "fieldValidation=Warn", odd("w"))
    assert code == 201 and "replicaz" not in body["spec"]
    assert warning and 'unknown field \\"spec.replicaz\\"' in warning
    code, warning, body = await call(post, socket, "fieldValidation=Ignore", odd("i"))
    assert code == 201 and warning is None and "colour" not in body["spec"]["template"][
        "spec"]["containers"][0]
    code, _, _ = await call(post, socket, "", odd("d"))  # tinykube's default: invalid
    assert code == 422
    code, _, body = await call(post, socket, "fieldValidation=Maybe", deployment("m"))
    assert code == 400 and "fieldValidation" in body["message"]
