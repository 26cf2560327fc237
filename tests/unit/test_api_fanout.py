"""Lists and watches sent from the store's JSON, encoded once per change: every watcher gets
every event once, in order, as stored; lists equal the stored objects, page by page."""

import json

import trio

from tests.unit.test_api import call, deployment
from tests.unit.test_api_tables_watch import events, get

BASE = "/apis/apps/v1/namespaces/default/deployments"


async def test_every_watcher_gets_every_event_once_in_order_as_stored(api):
    store, client, socket = api
    since = store.resource_version
    # An in-process watcher that scribbles on what it gets must not change what others send.
    scribbler = store.watch("Deployment")
    streams: dict[str, list] = {}

    async def stream(name, query):
        _, data = await call(get, socket, f"{BASE}?watch=1&resourceVersion={since}"
                                          f"&timeoutSeconds=2{query}")
        streams[name] = events(data)

    async def scribble():
        async for event in scribbler:
            event.object["spec"]["replicas"] = 99
            event.object["metadata"]["labels"]["app"] = "scribbled"

    stored = []
    async with trio.open_nursery() as nursery:
        for i in range(12):
            nursery.start_soon(stream, f"w{i}", "")
        nursery.start_soon(stream, "only-b", "&labelSelector=app%3Db")
        nursery.start_soon(scribble)
        for name in ("a", "b", "c"):
            stored.append(("ADDED", await call(client.create, deployment(name, replicas=1))))
        await call(client.scale, "Deployment", "b", "default", 3)
        stored.append(("MODIFIED", store.get("Deployment", "default", "b")))
        await call(client.delete, "Deployment", "c")
        gone = stored[2][1]
        stored.append(("DELETED", gone))
        await trio.sleep(2.5)  # the streams' timeoutSeconds
        scribbler.close()
    expected = [(t, o["metadata"]["name"]) for t, o in stored]
    for name in (f"w{i}" for i in range(12)):
        got = streams[name]
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == expected, name
        versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in got]
        assert versions == sorted(versions) and len(set(versions)) == len(versions)
        for event, (_, obj) in zip(got[:4], stored[:4], strict=True):
            assert event["object"] == obj  # as the API answered the write: not scribbled on
    assert [(e["type"], e["object"]["spec"]["replicas"]) for e in streams["only-b"]] == [
        ("ADDED", 1), ("MODIFIED", 3)]


async def test_lists_are_the_stored_objects_page_by_page(api):
    store, client, socket = api
    for name in ("d", "a", "c", "b"):
        await call(client.create, deployment(name))
    await call(client.scale, "Deployment", "c", "default", 5)  # the cached JSON follows
    await call(client.delete, "Deployment", "d")
    _, data = await call(get, socket, BASE)
    body = json.loads(data)
    assert body["kind"] == "DeploymentList"
    assert body["metadata"]["resourceVersion"] == str(store.resource_version)
    assert body["items"] == store.list("Deployment", "default")
    assert [o["spec"]["replicas"] for o in body["items"]] == [2, 2, 5]
    _, data = await call(get, socket, f"{BASE}?labelSelector=app%3Dc")
    assert [o["metadata"]["name"] for o in json.loads(data)["items"]] == ["c"]
    _, data = await call(get, socket, f"{BASE}?fieldSelector=metadata.name%3Db")
    assert [o["metadata"]["name"] for o in json.loads(data)["items"]] == ["b"]
    pages, token = [], ""
    while True:
        _, data = await call(get, socket, f"{BASE}?limit=2&continue={token}")
        page = json.loads(data)
        pages.append([o["metadata"]["name"] for o in page["items"]])
        token = page["metadata"].get("continue")
        if not token:
            break
    assert pages == [["a", "b"], ["c"]]
