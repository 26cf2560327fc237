"""PATCH by content type: strategic merge (Kubernetes merge keys and directives), JSON
Patch, merge patch; 415 for an unknown type, and nothing changes then."""

import pytest

from tests.unit.test_api import call, deployment
from tinykube.api.patch import apply_patch
from tinykube.model import schema
from tinykube.model.errors import ApiError

SMP = "application/strategic-merge-patch+json"
POD = schema.SCHEMAS["Pod"]


def pod(**spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "containers": [
            {"name": "a", "command": ["x"], "env": [{"name": "E1", "value": "1"},
                                                    {"name": "E2", "value": "2"}],
             "ports": [{"containerPort": 80}]},
            {"name": "b", "command": ["y"]}],
        **spec}}


def containers(obj):
    return obj["spec"]["containers"]


def test_lists_merge_by_their_kubernetes_keys():
    patched = apply_patch(pod(), SMP, {"spec": {"containers": [
        {"name": "b", "args": ["--v"]},
        {"name": "c", "command": ["z"]},
        {"name": "a", "env": [{"name": "E2", "value": "two"}],
         "ports": [{"containerPort": 81}]}]}}, POD)
    a, b, c = containers(patched)
    assert a["command"] == ["x"] and a["env"] == [{"name": "E1", "value": "1"},
                                                  {"name": "E2", "value": "two"}]
    assert a["ports"] == [{"containerPort": 80}, {"containerPort": 81}]
    assert b == {"name": "b", "command": ["y"], "args": ["--v"]} and c["name"] == "c"


def test_directives():
    # $patch: delete removes a keyed item; $setElementOrder orders the list.
    patched = apply_patch(pod(), SMP, {"spec": {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
        "containers": [{"name": "a", "env": [{"name": "E1", "$patch": "delete"}]}]}}, POD)
    assert [c["name"] for c in containers(patched)] == ["b", "a"]
    assert containers(patched)[1]["env"] == [{"name": "E2", "value": "2"}]
    # $patch: replace on a list replaces it whole; on a map replaces the map.
    patched = apply_patch(pod(), SMP, {"spec": {"containers": [
        {"name": "z", "command": ["q"]}, {"$patch": "replace"}]}}, POD)
    assert containers(patched) == [{"name": "z", "command": ["q"]}]
    patched = apply_patch(pod(), SMP, {"spec": {"containers": [
        {"name": "a", "$patch": "replace", "command": ["new"]}]}}, POD)
    assert containers(patched)[0] == {"name": "a", "command": ["new"]}
    # $retainKeys keeps only the listed keys of a map (volumes' source switch).
    volumes = pod(volumes=[{"name": "v", "emptyDir": {}}])
    patched = apply_patch(volumes, SMP, {"spec": {"volumes": [
        {"name": "v", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}]}}, POD)
    assert patched["spec"]["volumes"] == [{"name": "v", "hostPath": {"path": "/x"}}]
    # Primitive lists with strategy merge are sets; $deleteFromPrimitiveList removes.
    obj = pod()
    obj["metadata"]["finalizers"] = ["a", "b"]
    patched = apply_patch(obj, SMP, {"metadata": {"finalizers": ["c", "a"]}}, POD)
    assert patched["metadata"]["finalizers"] == ["a", "b", "c"]
    patched = apply_patch(obj, SMP, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}},
                          POD)
    assert patched["metadata"]["finalizers"] == ["b"]
    # Lists without a merge key are replaced; null removes a field.
    patched = apply_patch(pod(), SMP, {"spec": {"containers": [
        {"name": "a", "command": ["only"], "ports": None}]}}, POD)
    assert containers(patched)[0]["command"] == ["only"] and "ports" not in containers(
        patched)[0]


def test_json_patch_and_errors():
    patched = apply_patch(pod(), "application/json-patch+json", [
        {"op": "replace", "path": "/spec/containers/0/command", "value": ["j"]},
        {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}])
    assert containers(patched)[0]["command"] == ["j"] and patched["metadata"]["labels"]
    with pytest.raises(ApiError) as err:
        apply_patch(pod(), "application/json-patch+json",
                    [{"op": "test", "path": "/metadata/name", "value": "other"}])
    assert err.value.code == 422
    with pytest.raises(ApiError) as err:
        apply_patch(pod(), "application/json-patch+json", {"op": "add"})
    assert err.value.code == 400
    with pytest.raises(ApiError) as err:
        apply_patch(pod(), "text/plain", {})
    assert err.value.code == 415


async def test_patch_types_over_the_socket(api):
    store, client, _ = api
    await call(client.create, deployment())
    path = "/apis/apps/v1/namespaces/default/deployments/web"
    rv = store.resource_version
    for content_type in ("application/json", "application/xml", "text/plain"):
        with pytest.raises(ApiError) as err:
            await call(client.request, "PATCH", path, body={"spec": {"replicas": 9}},
                       content_type=content_type)
        assert err.value.code == 415 and err.value.reason == "UnsupportedMediaType"
    assert store.resource_version == rv
    patched = await call(client.request, "PATCH", path, content_type=SMP, body={"spec": {
        "template": {"spec": {"containers": [{"name": "c", "args": ["a"]}]}}}})
    (container,) = patched["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["sleep", "1"] and container["args"] == ["a"]
    patched = await call(client.request, "PATCH", path, content_type="application/json-patch+json",
                         body=[{"op": "replace", "path": "/spec/replicas", "value": 4}])
    assert patched["spec"]["replicas"] == 4
    with pytest.raises(ApiError) as err:  # a directive left over is an unknown field
        await call(client.request, "PATCH", path, content_type=SMP,
                   body={"spec": {"$bogus": 1}})
    assert err.value.code == 422
