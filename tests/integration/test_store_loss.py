"""A store that lost its objects never costs volume data (runtime/storeguard.py, claims.py).

A real daemon runs a pod that writes into its claim's directory; the daemon is stopped and
`state.db` is truncated to zero bytes, or replaced by a fresh empty store. The next start
must refuse (exit 2, an ERROR naming the lost pod and claim), touching nothing: the pod keeps
running, its data stays. `--accept-empty-store` then starts: the orphan pod is torn down, the
claim directory is kept.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from tests.integration.daemon import Daemon, container_pid, wait_for
from tinykube.runtime.syscalls import proc_start_time, process_alive

pytestmark = pytest.mark.root

POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "writer"},
    "spec": {"terminationGracePeriodSeconds": 1,
             "containers": [{"name": "c", "command": ["sh", "-c",
                                                      "echo precious > /data/file; sleep 3600"],
                             "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
             "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]},
}
CLAIM = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
         "spec": {"accessModes": ["ReadWriteOnce"],
                  "resources": {"requests": {"storage": "1Mi"}}}}


def lose_the_store(daemon: Daemon, how: str) -> None:
    db = daemon.root / "state.db"
    for suffix in ("-wal", "-shm"):
        (daemon.root / f"state.db{suffix}").unlink(missing_ok=True)
    if how == "zero-length":
        os.truncate(db, 0)
    else:  # a fresh, valid, empty store in its place
        db.unlink()
        sqlite3.connect(db).close()


@pytest.mark.parametrize("how", ["zero-length", "empty"])
def test_a_lost_store_refuses_to_start_and_keeps_the_data(daemon, how):
    daemon.apply(json.dumps(CLAIM) + "\n---\n" + json.dumps(POD))
    pod = daemon.wait_running("writer")
    data = daemon.root / "volumes" / "default" / "data" / "file"
    wait_for(lambda: data.exists() and data.read_text() == "precious\n", what="data written")
    pid = container_pid(pod)
    start = proc_start_time(pid)
    daemon.stop()
    lose_the_store(daemon, how)

    refused = subprocess.run([sys.executable, "-m", "tinykube.cli.main", *daemon.args()],
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "ERROR" in refused.stderr and "default/writer" in refused.stderr \
        and "default/data" in refused.stderr and "--accept-empty-store" in refused.stderr
    assert data.read_text() == "precious\n"
    assert process_alive(pid, start), "the pod was torn down by a refused start"

    daemon.extra_args = ["--accept-empty-store"]
    daemon.start()
    wait_for(lambda: not process_alive(pid, start), what="orphan pod torn down")
    assert daemon.client.list("Pod", "*") == []
    assert data.read_text() == "precious\n", "claim data removed after the store was lost"
    daemon.stop()
    daemon.extra_args = []
    daemon.start()  # the store is the truth again: an ordinary start
    assert data.read_text() == "precious\n"


def test_a_fresh_root_next_to_old_pod_records_refuses_to_start(daemon, tmp_path):
    """`--root` pointed at a new, empty directory while the run dir still has the old pods."""
    daemon.apply(json.dumps(POD).replace('"persistentVolumeClaim": {"claimName": "data"}',
                                         '"emptyDir": {}'))
    pod = daemon.wait_running("writer")
    pid, start = container_pid(pod), proc_start_time(container_pid(pod))
    daemon.stop()
    old_root = daemon.root
    daemon.root = tmp_path / "fresh-root"
    try:
        refused = subprocess.run([sys.executable, "-m", "tinykube.cli.main", *daemon.args()],
                                 capture_output=True, text=True, timeout=60, check=False)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "default/writer" in refused.stderr
        assert process_alive(pid, start)
    finally:
        daemon.root = old_root
    daemon.start()  # the right root again: the pod is re-adopted, not torn down
    assert daemon.wait_running("writer")["metadata"]["uid"] == pod["metadata"]["uid"]
    assert process_alive(pid, start)
