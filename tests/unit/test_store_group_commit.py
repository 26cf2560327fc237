"""Group commit in the SQLite store: concurrent writes share transactions, each writer is
answered only after its own write committed, a write that fails fails alone, and
resourceVersions reach watchers in order."""

import functools
import sqlite3

import pytest
import trio
import trio.lowlevel
import trio.testing

from tinykube.model.errors import AlreadyExists, Conflict, InsufficientStorage
from tinykube.store import Store


def pod(name, annotations=None):
    meta = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"terminationGracePeriodSeconds": 0, "containers": []}}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture
def transactions(store, monkeypatch):
    """Every transaction the store runs, as the resourceVersion it records (any thread)."""
    seen = []
    real = store._transaction

    def counting(durable, statements, rv):
        seen.append(rv)
        return real(durable, statements, rv)

    monkeypatch.setattr(store, "_transaction", counting)
    return seen


def committed_names(store):
    """Pod names as a second connection sees them: only what a transaction committed."""
    with sqlite3.connect(store.path) as db:
        return {row[0] for row in db.execute("SELECT name FROM objects WHERE kind='Pod'")}


async def test_concurrent_durable_writes_share_transactions_each_answered_after_commit(
        store, transactions):
    writers = 16
    visible_when_answered = {}

    async def write(i):
        await store.create(pod(f"p{i}"), durable=True)
        visible_when_answered[i] = f"p{i}" in committed_names(store)

    async with trio.open_nursery() as nursery:
        for i in range(writers):
            nursery.start_soon(write, i)
    assert visible_when_answered == dict.fromkeys(range(writers), True)
    assert len(transactions) < writers  # grouped: one fsync served several writers
    assert committed_names(store) == {f"p{i}" for i in range(writers)}


async def test_a_failing_write_fails_only_its_writer(store, transactions):
    watch = store.watch("Pod")
    # Room for a few small pods, not for a 2 MB one: that write fails for lack of space.
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count={pages + 40}")
    outcome = {}

    async def write(name, annotations=None):
        try:
            await store.create(pod(name, annotations), durable=True)
            outcome[name] = "ok"
        except InsufficientStorage:
            outcome[name] = "no space"

    # Hold the first write's commit so that the others queue up behind it as one group.
    store._db_lock.acquire()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write, "first")
            while store._group.idle:
                await trio.lowlevel.checkpoint()
            for i in range(6):
                nursery.start_soon(write, f"small{i}")
            nursery.start_soon(write, "huge", {"blob": "x" * (2 << 20)})
            await trio.testing.wait_all_tasks_blocked()
            store._db_lock.release()
    except BaseException:
        if store._db_lock.locked():
            store._db_lock.release()
        raise
    assert outcome == {"first": "ok", "huge": "no space", **{f"small{i}": "ok" for i in range(6)}}
    # The group of 7 was tried as one transaction, which the huge pod failed; then each alone.
    assert len(transactions) == 1 + 1 + 7
    assert committed_names(store) == {"first", *(f"small{i}" for i in range(6))}
    assert store.try_get("Pod", "default", "huge") is None
    names = []
    with trio.move_on_after(0.5):
        async for event in watch:
            names.append(event.object["metadata"]["name"])
            if len(names) == 7:
                break
    assert sorted(names) == sorted(["first", *(f"small{i}" for i in range(6))])


async def test_resource_versions_reach_watchers_in_order(store):
    watch = store.watch("Pod")
    answered = []

    async def write(i):
        obj = await store.create(pod(f"p{i}"), durable=i % 2 == 0)
        answered.append(int(obj["metadata"]["resourceVersion"]))
        obj["metadata"]["labels"] = {"round": "2"}
        obj = await store.update(obj, durable=i % 3 == 0)
        answered.append(int(obj["metadata"]["resourceVersion"]))

    async with trio.open_nursery() as nursery:
        for i in range(12):
            nursery.start_soon(write, i)
    seen = []
    async for event in watch:
        seen.append(event.resource_version)
        assert int(event.object["metadata"]["resourceVersion"]) == event.resource_version
        if len(seen) == len(answered):
            break
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert sorted(answered) == seen
    assert store.resource_version == max(seen)
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='rv'").fetchone()[0] == max(seen)


async def test_one_write_per_key_in_flight_keeps_preconditions(store):
    base = await store.create(pod("p"))
    outcomes = []

    async def update(value):
        obj = dict(base, metadata={**base["metadata"], "labels": {"v": value}})
        try:
            await store.update(obj, durable=True)  # both carry base's resourceVersion
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")

    async def create():
        try:
            await store.create(pod("q"), durable=True)
            outcomes.append("created")
        except AlreadyExists:
            outcomes.append("exists")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(update, "a")
        nursery.start_soon(update, "b")
        nursery.start_soon(create)
        nursery.start_soon(create)
    assert sorted(outcomes) == ["conflict", "created", "exists", "ok"]


async def test_a_cancelled_writer_still_commits_and_frees_its_key(store):
    cancel = trio.CancelScope()

    async def queued_then_cancelled():
        with cancel:
            await store.create(pod("b"), durable=True)

    store._db_lock.acquire()  # "a" commits first and holds the group; "b" queues behind it
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(store.create, pod("a"), durable=True))
            while store._group.idle:
                await trio.lowlevel.checkpoint()
            nursery.start_soon(queued_then_cancelled)
            await trio.testing.wait_all_tasks_blocked()
            cancel.cancel()
            await trio.testing.wait_all_tasks_blocked()
            store._db_lock.release()
    finally:
        if store._db_lock.locked():
            store._db_lock.release()
    # A write is never abandoned half-way: "b" committed, and its key takes the next write.
    assert committed_names(store) == {"a", "b"}
    obj = store.get("Pod", "default", "b")
    obj["metadata"]["labels"] = {"x": "y"}
    assert (await store.update(obj, durable=True))["metadata"]["labels"] == {"x": "y"}
