"""The namespaces resource: default plus namespaces in use plus created ones; deleting one
deletes what is in it; default cannot be deleted; discovery lists it cluster-scoped."""

import pytest

from tests.unit.test_api import call, deployment
from tinykube.model.errors import AlreadyExists, ApiError, NotFound

NS = "/api/v1/namespaces"


def names(answer):
    return [o["metadata"]["name"] for o in answer["items"]]


async def test_namespaces_lifecycle(api):
    store, client, _ = api
    assert names(await call(client.request, "GET", NS)) == ["default"]
    await call(client.request, "POST", "/apis/apps/v1/namespaces/used/deployments",
               body=deployment("d"))
    created = await call(client.request, "POST", NS, body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    assert created["status"]["phase"] == "Active" and "namespace" not in created["metadata"]
    assert names(await call(client.request, "GET", NS)) == ["default", "team", "used"]
    with pytest.raises(AlreadyExists):
        await call(client.request, "POST", NS, body={
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    with pytest.raises(ApiError) as err:
        await call(client.request, "POST", NS, body={
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Bad_Name"}})
    assert err.value.code == 422
    await call(client.request, "POST", "/apis/apps/v1/namespaces/team/deployments",
               body=deployment("t"))
    gone = await call(client.request, "DELETE", f"{NS}/team")
    assert gone["status"]["phase"] == "Terminating"
    assert store.list("Deployment", "team") == [] and store.list("Deployment", "used")
    assert names(await call(client.request, "GET", NS)) == ["default", "used"]
    with pytest.raises(NotFound):
        await call(client.request, "GET", f"{NS}/team")
    with pytest.raises(ApiError) as err:
        await call(client.request, "DELETE", f"{NS}/default")
    assert err.value.code == 403
    with pytest.raises(ApiError) as err:  # a clear refusal, not a list posing as a stream
        await call(client.request, "GET", NS, params={"watch": "true"})
    assert err.value.code == 405


async def test_namespace_dry_run_and_discovery(api):
    store, client, _ = api
    rv = store.resource_version
    await call(client.request, "POST", NS, params={"dryRun": "All"}, body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dry"}})
    assert store.resource_version == rv
    core = await call(client.request, "GET", "/api/v1")
    (ns,) = [r for r in core["resources"] if r["name"] == "namespaces"]
    assert ns["namespaced"] is False and ns["shortNames"] == ["ns"]


async def test_the_tinykube_client_lists_namespaces_cluster_wide(api):
    _, client, _ = api
    listed = await call(client.list, "Namespace", "default")  # `tinykube get ns`
    assert [o["metadata"]["name"] for o in listed] == ["default"]
