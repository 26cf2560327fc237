"""The store survives what issue 14 found: rows it cannot serve, objects without a name,
and a watch history that grew to ~180 MB at 20,000 events."""

from __future__ import annotations

import json
import sqlite3

import pytest
import trio

from tinykube.model.errors import AlreadyExists, Gone, Invalid
from tinykube.store import Store
from tinykube.store import base as store_module


def rs(name: str, payload: str = "") -> dict:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "labels": {"app": name},
                         "annotations": {"payload": payload} if payload else {}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c",
                                                           "command": ["sleep", "1"]}]}}}}


async def test_rows_that_cannot_be_served_are_skipped_reported_and_set_aside(tmp_path):
    db = tmp_path / "state.db"
    first = Store(db)
    await first.create(rs("good"))
    first.close()
    raw = sqlite3.connect(db)
    nameless = {"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "default",
                                                                "uid": "u1"}, "spec": {}}
    garbage_status = {"apiVersion": "v1", "kind": "Pod", "status": "garbage", "spec": {},
                      "metadata": {"name": "gs", "namespace": "default", "uid": "u2"}}
    rows = [("Pod", "default", "", 5, json.dumps(nameless)),
            ("Pod", "default", "gs", 6, json.dumps(garbage_status)),
            ("Pod", "default", "notjson", 7, "{not json"),
            ("Pod", "default", "binary", 8, b"\xff\xfe\x00garbage"),
            # well typed, but a container without a name crashed the kubelet at every start
            ("Pod", "default", "noname", 9, json.dumps({
                "apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"command": ["x"]}]},
                "metadata": {"name": "noname", "namespace": "default", "uid": "u3"}}))]
    raw.executemany("INSERT INTO objects VALUES (?, ?, ?, ?, ?)", rows)
    raw.commit()
    raw.close()

    store = Store(db)  # must not raise
    try:
        assert [o["metadata"]["name"] for o in store.list("ReplicaSet")] == ["good"]
        assert store.list("Pod") == []
        assert set(store.unloadable) == {("Pod", "default", ""), ("Pod", "default", "gs"),
                                         ("Pod", "default", "notjson"),
                                         ("Pod", "default", "binary"),
                                         ("Pod", "default", "noname")}
        assert "spec.containers[0].name" in store.unloadable[("Pod", "default", "noname")]
        assert "status" in store.unloadable[("Pod", "default", "gs")]
        assert "metadata.name" in store.unloadable[("Pod", "default", "")]
        # The name stays taken until the row is set aside: nothing overwrites it silently.
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gs"},
               "spec": {"containers": [{"name": "c", "command": ["sleep", "1"]}]}}
        with pytest.raises(AlreadyExists, match="doctor"):
            await store.create(pod)
        backup = store.set_aside(("Pod", "default", "gs"), tmp_path / "backup")
        saved = json.loads(backup.read_text())
        assert json.loads(saved["data"]) == garbage_status and "status" in saved["reason"]
        await store.create(pod)
        for key in list(store.unloadable):
            store.set_aside(key, tmp_path / "backup")
    finally:
        store.close()
    again = Store(db)
    try:
        assert not again.unloadable
        assert {o["metadata"]["name"] for o in again.list("Pod")} == {"gs"}
    finally:
        again.close()


@pytest.mark.parametrize("meta", [{"name": None, "generateName": "g-"}, {"name": ""}, {},
                                  {"name": "Bad/Name"}])
async def test_an_object_without_a_usable_name_is_never_stored(store, meta):
    before = store.resource_version
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {}}
    with pytest.raises((Invalid, KeyError)):
        await store.create(obj)
    assert store.list("Pod") == [] and store.resource_version == before


async def test_watch_history_is_bounded_by_bytes(store_backend, monkeypatch):
    """Big objects: the history keeps at most HISTORY_BYTES of them (serialized), far fewer
    than HISTORY_LIMIT events; a watch inside the history still replays exactly, one
    before it gets Gone (and re-lists)."""
    monkeypatch.setattr(store_module, "HISTORY_BYTES", 2 * 1024 * 1024)
    async with store_backend.open() as store:
        payload = "x" * 8192
        for i in range(600):  # ~4.9 MB of events
            await store.create(rs(f"r{i}", payload))
        assert store.history_bytes <= 2 * 1024 * 1024
        kept = len(store._history)
        assert 200 < kept < 600
        since = store.resource_version - 10
        with store.watch("ReplicaSet", since=since) as watch, trio.fail_after(10):
            events = [await anext(watch) for _ in range(10)]
        assert [e.object["metadata"]["name"] for e in events] == [f"r{i}" for i in range(590, 600)]
        assert events[0].object["metadata"]["annotations"]["payload"] == payload
        with pytest.raises(Gone):
            store.watch("ReplicaSet", since=since - 500)  # trimmed: ~250 of 600 are kept


async def test_a_failed_write_reports_its_own_error_not_a_rollback_error(tmp_path):
    """SQLite rolls a failed transaction back by itself; the store's own ROLLBACK must not
    replace the real error with "cannot rollback - no transaction is active"."""
    store = Store(tmp_path / "state.db")
    try:
        await store.create(rs("a"))
        store._db.execute("CREATE TRIGGER fail BEFORE INSERT ON objects BEGIN "
                          "SELECT RAISE(ROLLBACK, 'disk says no'); END")
        with pytest.raises(sqlite3.DatabaseError, match="disk says no"):
            await store.create(rs("b"))
        assert [o["metadata"]["name"] for o in store.list("ReplicaSet")] == ["a"]
        store._db.execute("DROP TRIGGER fail")
        await store.create(rs("b"))
    finally:
        store.close()


async def test_watch_history_memory_is_bounded(tmp_path, monkeypatch):
    """The issue's measure, scaled down: status writes of a pod (~3.6 kB as JSON) grew the
    history without bound by size (278 MB at 20,000 writes of this pod on the old store, 18 MB
    now). With a 1 MiB bound, 1,500 writes (~5 MB of JSON) keep the memory near the bound."""
    import tracemalloc

    monkeypatch.setattr(store_module, "HISTORY_BYTES", 1024 * 1024, raising=False)

    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "annotations": {"a": "b" * 200}},
           "spec": {"containers": [{"name": f"c{i}", "command": ["sh", "-c", "x" * 200],
                                    "env": [{"name": f"E{j}", "value": "v" * 40}
                                            for j in range(10)]} for i in range(3)]},
           "status": {"phase": "Pending"}}
    store = Store(tmp_path / "state.db")
    try:
        await store.create(pod)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(1_500):
                current = store.get("Pod", "default", "p")
                current["status"]["phase"] = "Running" if i % 2 else "Pending"
                await store.update_status(current)
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert grown < 2 * store_module.HISTORY_BYTES, f"history grew {grown / 1e6:.0f} MB"
        assert store.history_bytes <= store_module.HISTORY_BYTES
    finally:
        store.close()
