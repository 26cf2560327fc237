"""Discovery and OpenAPI documents over a real socket: legacy and aggregated shapes,
trailing slashes, and an OpenAPI v3 generated from the validation schema."""

import json

from tests.unit.test_api import call
from tinykube.api import openapi
from tinykube.client import _UnixConnection
from tinykube.model import schema

AGGREGATED_ACCEPT = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                     "application/json")


def get(socket, path, accept="application/json"):
    conn = _UnixConnection(str(socket), 10)
    conn.request("GET", path, headers={"Accept": accept})
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    return response.status, response.getheader("content-type"), body


async def test_version_and_legacy_discovery(api):
    _, _, socket = api
    code, _, version = await call(get, socket, "/version")
    assert code == 200 and version["major"] == "1" and version["gitVersion"].startswith("v1.")
    _, _, versions = await call(get, socket, "/api/")
    assert versions["kind"] == "APIVersions" and versions["versions"] == ["v1"]
    _, _, groups = await call(get, socket, "/apis")
    assert [g["name"] for g in groups["groups"]] == ["apps", "coordination.k8s.io",
                                                     "discovery.k8s.io"]
    _, _, core = await call(get, socket, "/api/v1/")
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["pods"]["shortNames"] == ["po"] and by_name["pods"]["categories"] == ["all"]
    assert "watch" in by_name["pods"]["verbs"] and by_name["pods"]["namespaced"] is True
    assert {"pods/log", "pods/exec", "pods/status", "replicationcontrollers/scale"} <= set(
        by_name)
    assert by_name["services"]["shortNames"] == ["svc"] and by_name["services"]["kind"] == \
        "Service"
    assert by_name["nodes"]["namespaced"] is False and by_name["nodes"]["shortNames"] == ["no"]
    _, _, discovery = await call(get, socket, "/apis/discovery.k8s.io/v1/")
    slices = {r["name"]: r for r in discovery["resources"]}["endpointslices"]
    assert slices["kind"] == "EndpointSlice" and slices["namespaced"] is True
    _, _, apps = await call(get, socket, "/apis/apps/v1/")
    by_name = {r["name"]: r for r in apps["resources"]}
    assert by_name["deployments"]["shortNames"] == ["deploy"]
    scale = by_name["deployments/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")


async def test_aggregated_discovery_when_asked(api):
    _, _, socket = api
    code, content_type, body = await call(get, socket, "/apis", AGGREGATED_ACCEPT)
    assert code == 200 and "as=APIGroupDiscoveryList" in content_type
    assert body["kind"] == "APIGroupDiscoveryList"
    assert body["apiVersion"] == "apidiscovery.k8s.io/v2"
    groups = {item["metadata"]["name"]: item for item in body["items"]}
    assert set(groups) == {"apps", "coordination.k8s.io", "discovery.k8s.io"}
    apps = groups["apps"]
    resources = {r["resource"]: r for r in apps["versions"][0]["resources"]}
    deploy = resources["deployments"]
    assert deploy["scope"] == "Namespaced" and deploy["responseKind"]["kind"] == "Deployment"
    subs = {s["subresource"]: s for s in deploy["subresources"]}
    assert subs["scale"]["responseKind"] == {"group": "autoscaling", "version": "v1",
                                             "kind": "Scale"}
    _, _, core = await call(get, socket, "/api", AGGREGATED_ACCEPT)
    pods = {r["resource"]: r for r in core["items"][0]["versions"][0]["resources"]}["pods"]
    assert {s["subresource"] for s in pods["subresources"]} == {"status", "log", "exec"}


async def test_openapi_v3_index_and_documents(api):
    _, _, socket = api
    _, _, index = await call(get, socket, "/openapi/v3")
    assert set(index["paths"]) == {"api/v1", "apis/apps/v1", "apis/coordination.k8s.io/v1",
                                   "apis/discovery.k8s.io/v1"}
    _, _, doc = await call(get, socket,
                           index["paths"]["apis/discovery.k8s.io/v1"]["serverRelativeURL"])
    endpoint_slice = doc["components"]["schemas"]["io.k8s.api.discovery.v1.EndpointSlice"]
    assert {"addressType", "endpoints", "ports"} <= set(endpoint_slice["properties"])
    _, _, doc = await call(get, socket, index["paths"]["apis/apps/v1"]["serverRelativeURL"])
    deployment = doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "version": "v1", "kind": "Deployment"}]
    containers = deployment["properties"]["spec"]["properties"]["template"]["properties"][
        "spec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]


def test_openapi_follows_the_validation_schema():
    """One source of truth: every field the validator knows is in the published schema."""
    def fields(node, path=""):
        if isinstance(node, schema.Obj):
            for name, child in node.fields.items():
                yield f"{path}.{name}"
                yield from fields(child, f"{path}.{name}")
        elif isinstance(node, schema.ListOf):
            yield from fields(node.item, path + "[]")

    def published(node, path=""):
        for name, child in node.get("properties", {}).items():
            yield f"{path}.{name}"
            yield from published(child, f"{path}.{name}")
        if "items" in node:
            yield from published(node["items"], path + "[]")

    for kind, node in schema.SCHEMAS.items():
        generated = openapi.to_openapi(node)
        assert set(fields(node)) == set(published(generated)), kind
