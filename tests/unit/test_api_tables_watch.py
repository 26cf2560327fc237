"""Table responses and watch options over a real socket (regressions: watches ignored
timeoutSeconds and never ended; kubectl's watch-list got no initial-events-end bookmark)."""

import json

import pytest

from tests.unit.test_api import call, deployment
from tinykube.client import _UnixConnection

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
BASE = "/apis/apps/v1/namespaces/default/deployments"


def get(socket, path, accept="application/json"):
    conn = _UnixConnection(str(socket), 30)
    conn.request("GET", path, headers={"Accept": accept})
    response = conn.getresponse()
    data = response.read()  # a watch: until the server ends the stream
    conn.close()
    return response.status, data


def events(data):
    return [json.loads(line) for line in data.splitlines() if line.strip()]


async def test_lists_and_objects_as_tables(api):
    _, client, socket = api
    await call(client.create, deployment("a"))
    code, data = await call(get, socket, BASE, TABLE)
    body = json.loads(data)
    assert code == 200 and body["kind"] == "Table"
    names = [c["name"].upper() for c in body["columnDefinitions"]]
    assert names[:5] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    wide = [c["name"].upper() for c in body["columnDefinitions"] if c["priority"] == 1]
    assert wide == ["CONTAINERS", "COMMAND"]
    (row,) = body["rows"]
    assert row["cells"][0] == "a" and row["object"]["metadata"]["name"] == "a"
    assert row["object"]["kind"] == "PartialObjectMetadata"
    _, data = await call(get, socket, f"{BASE}/a?includeObject=Object", TABLE)
    assert json.loads(data)["rows"][0]["object"]["kind"] == "Deployment"
    _, data = await call(get, socket, "/api/v1/pods", TABLE)
    pods = json.loads(data)
    assert pods["rows"] == [] and [c["name"].upper() for c in pods["columnDefinitions"]
                                   if c["priority"] == 1] == ["IP", "NODE"]
    _, data = await call(get, socket, BASE)  # plain JSON unless a Table is asked for
    assert json.loads(data)["kind"] == "DeploymentList"


async def test_timeout_seconds_ends_the_watch(api):
    _, client, socket = api
    await call(client.create, deployment("a"))
    code, data = await call(get, socket, f"{BASE}?watch=true&timeoutSeconds=1")
    assert code == 200
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events(data)] == [
        ("ADDED", "a")]


async def test_watch_list_ends_initial_events_with_a_bookmark(api):
    store, client, socket = api
    await call(client.create, deployment("a"))
    await call(client.create, deployment("b"))
    path = (f"{BASE}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
            "&allowWatchBookmarks=true&timeoutSeconds=1")
    _, data = await call(get, socket, path)
    found = events(data)
    assert [e["type"] for e in found] == ["ADDED", "ADDED", "BOOKMARK"]
    bookmark = found[-1]["object"]
    assert bookmark["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert bookmark["metadata"]["resourceVersion"] == str(store.resource_version)
    assert bookmark["kind"] == "Deployment"


async def test_watch_events_as_tables(api):
    _, client, socket = api
    await call(client.create, deployment("a"))
    await call(client.create, deployment("b"))
    _, data = await call(get, socket, f"{BASE}?watch=1&timeoutSeconds=1", TABLE)
    first, second = events(data)
    assert first["object"]["kind"] == "Table" and first["object"]["columnDefinitions"]
    assert second["object"]["columnDefinitions"] == []  # headers once, as Kubernetes does
    assert second["object"]["rows"][0]["cells"][0] == "b"


@pytest.mark.parametrize("query", ["timeoutSeconds=x", "sendInitialEvents=true",
                                   "resourceVersionMatch=Sometimes"])
async def test_bad_watch_options_are_400(api, query):
    _, _, socket = api
    code, data = await call(get, socket, f"{BASE}?watch=1&{query}")
    assert code == 400 and json.loads(data)["kind"] == "Status"


async def test_allow_watch_bookmarks_sends_periodic_bookmarks(api, monkeypatch):
    from tinykube.api import watchopts

    store, client, socket = api
    monkeypatch.setattr(watchopts, "BOOKMARK_INTERVAL", 0.2)  # Kubernetes: about a minute
    await call(client.create, deployment("a"))
    path = (f"{BASE}?watch=1&resourceVersion={store.resource_version}"
            "&allowWatchBookmarks=true&timeoutSeconds=1")
    _, data = await call(get, socket, path)
    found = events(data)
    assert found and {e["type"] for e in found} == {"BOOKMARK"}
    assert all(e["object"]["metadata"]["resourceVersion"] == str(store.resource_version)
               and "annotations" not in e["object"]["metadata"] for e in found)
    _, data = await call(get, socket, path.replace("&allowWatchBookmarks=true", ""))
    assert events(data) == []  # no bookmarks unless allowed
