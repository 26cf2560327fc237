"""limit/continue pagination and DELETE on a collection (deletecollection) with selectors."""

import pytest

from tests.unit.test_api import call, deployment
from tinykube.model.errors import ApiError

BASE = "/apis/apps/v1/namespaces/default/deployments"


async def test_limit_and_continue_page_through_a_list(api):
    _, client, _ = api
    for name in ("a", "b", "c", "d", "e"):
        await call(client.create, deployment(name))
    seen, token, pages = [], None, 0
    while True:
        params = {"limit": "2", **({"continue": token} if token else {})}
        page = await call(client.request, "GET", BASE, params=params)
        seen += [o["metadata"]["name"] for o in page["items"]]
        pages += 1
        token = page["metadata"].get("continue")
        if not token:
            break
        assert page["metadata"]["remainingItemCount"] == 5 - len(seen)
    assert seen == ["a", "b", "c", "d", "e"] and pages == 3
    with pytest.raises(ApiError) as err:
        await call(client.request, "GET", BASE, params={"continue": "garbage!"})
    assert err.value.code == 400


async def test_delete_collection_with_a_label_selector(api):
    store, client, _ = api
    for name in ("a", "b", "c"):
        obj = deployment(name)
        obj["metadata"]["labels"]["tier"] = "x" if name != "c" else "y"
        await call(client.create, obj)
    dry = await call(client.request, "DELETE", BASE, params={"labelSelector": "tier=x",
                                                              "dryRun": "All"})
    assert len(dry["items"]) == 2 and len(store.list("Deployment")) == 3
    answer = await call(client.request, "DELETE", BASE, params={"labelSelector": "tier=x"})
    assert sorted(o["metadata"]["name"] for o in answer["items"]) == ["a", "b"]
    assert [o["metadata"]["name"] for o in store.list("Deployment")] == ["c"]
