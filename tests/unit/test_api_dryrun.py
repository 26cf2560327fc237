"""`dryRun=All` on every write: the answer is what would be written, and nothing is stored.
(Regression: the server ignored dryRun and really created, changed and deleted objects.)"""

import pytest

from tests.unit.test_api import call, deployment
from tinykube.model.errors import ApiError

DRY = {"dryRun": "All"}
BASE = "/apis/apps/v1/namespaces/default/deployments"


async def test_dry_run_create_stores_nothing(api):
    store, client, _ = api
    rv = store.resource_version
    answer = await call(client.request, "POST", BASE, body=deployment(), params=DRY)
    assert answer["metadata"]["name"] == "web" and answer["metadata"]["uid"]
    assert answer["spec"]["revisionHistoryLimit"] == 10  # defaulted like a real create
    assert not answer["metadata"].get("resourceVersion")
    assert store.try_get("Deployment", "default", "web") is None
    assert store.resource_version == rv


async def test_dry_run_create_still_validates(api):
    _, client, _ = api
    bad = deployment()
    bad["spec"]["replicaz"] = 1
    with pytest.raises(ApiError) as err:
        await call(client.request, "POST", BASE, body=bad, params=DRY)
    assert err.value.code == 422


async def test_dry_run_update_patch_scale_delete_change_nothing(api):
    store, client, _ = api
    await call(client.create, deployment())
    before = store.get("Deployment", "default", "web")
    rv = store.resource_version
    changed = dict(before, spec=dict(before["spec"], replicas=5))
    put = await call(client.request, "PUT", f"{BASE}/web", body=changed, params=DRY)
    assert put["spec"]["replicas"] == 5 and put["metadata"]["generation"] == 2
    patched = await call(client.request, "PATCH", f"{BASE}/web", body={"spec": {"replicas": 7}},
                         params=DRY, content_type="application/merge-patch+json")
    assert patched["spec"]["replicas"] == 7
    scaled = await call(client.request, "PUT", f"{BASE}/web/scale", params=DRY, body={
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 9}})
    assert scaled["spec"]["replicas"] == 9
    await call(client.request, "PUT", f"{BASE}/web/status", params=DRY,
               body=dict(before, status={"replicas": 3}))
    await call(client.request, "POST", BASE, body=deployment(replicas=4),
               params={"apply": "true", **DRY})
    deleted = await call(client.request, "DELETE", f"{BASE}/web", params=DRY)
    assert deleted["metadata"]["name"] == "web"
    assert store.get("Deployment", "default", "web") == before
    assert store.resource_version == rv


async def test_unknown_dry_run_value_is_refused(api):
    store, client, _ = api
    with pytest.raises(ApiError) as err:
        await call(client.request, "POST", BASE, body=deployment(), params={"dryRun": "Some"})
    assert err.value.code == 400 and "dryRun" in err.value.message
    assert store.try_get("Deployment", "default", "web") is None
