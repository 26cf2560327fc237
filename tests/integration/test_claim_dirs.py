"""runtime/claims.py against a real Store and real directories (no processes needed): a claim's
directory goes when the claim object is seen deleted, waits for pods that mount it, survives
while the claim exists, was never a claim's, or merely vanished from the store (an empty or
replaced state.db), and a restart finishes what a crash left after the tombstone."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from tinykube.runtime.claimledger import read_ledger
from tinykube.runtime.claims import ClaimDirectories
from tinykube.store import Store


def claim(name: str, namespace: str = "default") -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"accessModes": ["ReadWriteOnce"]}, "status": {"phase": "Bound"}}


def pod(name: str, claim_name: str, grace: int = 30) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"terminationGracePeriodSeconds": grace,
                     "containers": [{"name": "c", "command": ["true"]}],
                     "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim_name}}]}}


def make_dir(root: Path, name: str, namespace: str = "default") -> Path:
    path = root / "volumes" / namespace / name
    path.mkdir(parents=True)
    (path / "data").write_text("x")
    (path / "escape").symlink_to(root / "outside")  # rmtree must not follow it
    return path


@asynccontextmanager
async def running(store: Store, root: Path):
    async with trio.open_nursery() as nursery:
        await nursery.start(ClaimDirectories(store, root).run)
        yield
        nursery.cancel_scope.cancel()


@pytest.fixture
def store(tmp_path):
    """A store in tmp_path, beside `outside/`, the directory symlinks in claims point at."""
    (tmp_path / "outside").mkdir()
    store = Store(tmp_path / "state.db")
    yield store
    store.close()


async def until(predicate, timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


async def test_deleting_a_claim_removes_its_directory_only(tmp_path, store):
    async with running(store, tmp_path):
        await store.create(claim("a"))
        await store.create(claim("b"))
        a, b = make_dir(tmp_path, "a"), make_dir(tmp_path, "b")
        stray = make_dir(tmp_path, "never-a-claim")
        await store.delete("PersistentVolumeClaim", "default", "a")
        await until(lambda: not a.exists())
        await until(lambda: not any((tmp_path / "volumes" / ".trash").iterdir()))
        assert b.exists() and stray.exists() and (tmp_path / "outside").is_dir()
        ledger = read_ledger(tmp_path / "volumes")
        assert set(ledger.claims) == {("default", "b")} and not ledger.deleted


async def test_directory_waits_for_the_pods_that_mount_it(tmp_path, store):
    async with running(store, tmp_path):
        await store.create(claim("a"))
        await store.create(pod("p", "a"))
        a = make_dir(tmp_path, "a")
        await store.delete("Pod", "default", "p")  # graceful: still in the store
        await store.delete("PersistentVolumeClaim", "default", "a")
        await trio.sleep(0.2)
        assert (a / "data").exists(), "removed while a terminating pod mounts it"
        await store.delete("Pod", "default", "p", grace_period=0)
        await until(lambda: not a.exists())


async def test_a_finished_pod_does_not_hold_the_directory(tmp_path, store):
    async with running(store, tmp_path):
        await store.create(claim("a"))
        done = await store.create(pod("p", "a"))
        await store.update_status(dict(done, status={"phase": "Failed"}))
        a = make_dir(tmp_path, "a")
        await store.delete("PersistentVolumeClaim", "default", "a")
        await until(lambda: not a.exists())


async def test_recreated_claim_keeps_the_directory(tmp_path, store):
    async with running(store, tmp_path):
        await store.create(claim("a"))
        await store.create(pod("p", "a"))
        a = make_dir(tmp_path, "a")
        await store.delete("PersistentVolumeClaim", "default", "a")
        await store.create(claim("a"))
        await store.delete("Pod", "default", "p", grace_period=0)
        await trio.sleep(0.2)
        assert (a / "data").exists()


async def test_a_restart_removes_what_a_seen_deletion_left(tmp_path, store):
    """The daemon died after writing the tombstone, before the removal: the next start
    finishes it (and empties the trash)."""
    async with running(store, tmp_path):
        await store.create(claim("a"))
        await store.create(pod("p", "a"))
        a = make_dir(tmp_path, "a")
        await store.delete("PersistentVolumeClaim", "default", "a")
        await trio.sleep(0.1)  # tombstoned, waiting for the pod
        assert read_ledger(tmp_path / "volumes").deleted
    await store.delete("Pod", "default", "p", grace_period=0)  # while "down"
    leftover = tmp_path / "volumes" / ".trash" / "default.old.1234"
    leftover.mkdir(parents=True)
    async with running(store, tmp_path):
        await until(lambda: not a.exists() and not leftover.exists())
    assert (tmp_path / "outside").is_dir()


async def test_a_deletion_never_seen_keeps_the_directory(tmp_path, store):
    """The claim vanished while no watcher ran (a crash before the DELETED event was seen,
    or a store that lost it): absence is not a deletion; the data stays."""
    async with running(store, tmp_path):
        await store.create(claim("a"))
        await trio.sleep(0.05)
    a = make_dir(tmp_path, "a")
    await store.delete("PersistentVolumeClaim", "default", "a")
    async with running(store, tmp_path):
        await trio.sleep(0.2)
    assert (a / "data").read_text() == "x"
    assert not read_ledger(tmp_path / "volumes").claims  # forgotten, never removed


async def test_an_empty_store_keeps_every_claim_directory(tmp_path, store):
    """state.db replaced by an empty one (or truncated to zero bytes) beside the old ledger."""
    async with running(store, tmp_path):
        for name in ("a", "b"):
            await store.create(claim(name))
        await trio.sleep(0.05)
    store.close()  # before its file is emptied (closing again at teardown is harmless)
    a, b = make_dir(tmp_path, "a"), make_dir(tmp_path, "b")
    (tmp_path / "state.db").write_bytes(b"")
    empty = Store(tmp_path / "state.db")
    try:
        async with running(empty, tmp_path):
            await trio.sleep(0.2)
        assert (a / "data").exists() and (b / "data").exists()
    finally:
        empty.close()
