"""A full disk under `--root` (issue 14): writes are refused as "no space left on device"
(507), a delete still works (the store releases its reserve file), and the store is never
corrupted. Before, every write failed, delete included, with SQLite's "cannot rollback - no
transaction is active".

The daemon's root is a small tmpfs mounted for this test (and unmounted after).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess

import pytest

from tests.integration import hostile
from tests.integration.daemon import Daemon, wait_for
from tinykube.model.errors import ApiError, NotFound

pytestmark = pytest.mark.root

DISK_SIZE = "40m"


def _rs(name: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c",
                                                           "command": ["sleep", "1"]}]}}}}


def _fill(path) -> None:
    """Write `path` until the file system has not a byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 65536, 4096, 512, 1):
            block = b"\0" * size
            while True:
                try:
                    os.write(fd, block)
                except OSError as e:
                    assert e.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)


@pytest.fixture
def small_disk_daemon(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0700", "tkfull",
                    str(disk)], check=True)
    d = Daemon(tmp_path)
    d.root = disk / "root"
    try:
        d.start()
        yield d
    finally:
        try:
            for leftover in disk.glob("filler*"):
                leftover.unlink()
            d.cleanup()
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)


def test_full_disk_refuses_writes_clearly_and_deletes_still_work(small_disk_daemon: Daemon):
    daemon = small_disk_daemon
    client = daemon.client
    for name in ("keep", "drop", "drop2"):
        client.create(_rs(name))
    client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hog"},
                   "spec": {"terminationGracePeriodSeconds": 1,
                            "containers": [{"name": "c", "command": ["sleep", "infinity"]}]}})
    daemon.wait_running("hog")

    _fill(daemon.root.parent / "filler")

    # A create is refused as such, and nothing is half-written.
    with pytest.raises(ApiError) as refused:
        for i in range(50):  # the WAL may have had a few free pages: write until it is full
            client.create(_rs(f"new{i}"))
    assert refused.value.code == 507, refused.value
    assert "no space left on device" in refused.value.message
    assert "cannot rollback" not in refused.value.message
    created = {o["metadata"]["name"] for o in client.list("ReplicaSet")} - {"keep", "drop",
                                                                             "drop2"}
    # Deletes work on the full disk (the reserve is released for them), more than one,
    # and a pod's graceful delete (two writes, the kubelet's in between) runs to the end.
    client.delete("ReplicaSet", "drop")
    client.delete("ReplicaSet", "drop2")
    for name in ("drop", "drop2"):
        with pytest.raises(NotFound):
            client.get("ReplicaSet", name)
    client.delete("Pod", "hog")
    wait_for(lambda: not client.list("Pod"), timeout=60, what="pod hog deleted")
    assert "released the 8 MiB reserve" in daemon.log_path.read_text()
    assert hostile.healthz_ms(str(daemon.socket)) < 100

    # The store is intact, and once space is free again, writes work.
    db = sqlite3.connect(f"file:{daemon.root / 'state.db'}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()
    for leftover in daemon.root.parent.glob("filler*"):
        leftover.unlink()
    client.create(_rs("after"))
    daemon.stop()
    daemon.start()
    names = {o["metadata"]["name"] for o in client.list("ReplicaSet")}
    assert names == {"keep", "after"} | created
    # The reserve is taken back once there is room (at the latest by the next start).
    wait_for(lambda: (daemon.root / "state.reserve").stat().st_size > 0, what="reserve back")
