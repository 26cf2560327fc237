"""A daemon starts whatever its store holds (issue 14): rows written straight into state.db
that no API would accept are skipped, logged with their key, reported by /healthz and by a
`Warning:` line of every CLI read, and `tinykube doctor [--repair]` lists them and moves them
to backup files. Before, one such row (a nameless pod, `status: "garbage"`) crashed every
start."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.integration import hostile
from tests.integration.daemon import Daemon, wait_for
from tests.integration.manifests import workload

pytestmark = pytest.mark.root

SETUP = workload("ReplicaSet", "web", grace=0)


def _row(obj: dict | str) -> str:
    return obj if isinstance(obj, str) else json.dumps(obj)


def corrupt_rows() -> list[tuple[str, str, str, int, str]]:
    pod_meta = {"namespace": "default", "uid": "0f0f0f0f-0000-4000-8000-000000000001"}
    spec = {"containers": [{"name": "c", "command": ["sleep", "infinity"]}]}
    return [
        # metadata.name null, as `generateName` used to store it
        ("Pod", "default", "", 900, _row({"apiVersion": "v1", "kind": "Pod",
                                          "metadata": pod_meta, "spec": spec})),
        # status of the wrong type, as PATCH /status used to store it
        ("Pod", "default", "garbage", 901, _row({
            "apiVersion": "v1", "kind": "Pod", "spec": spec, "status": "garbage",
            "metadata": {**pod_meta, "name": "garbage",
                         "uid": "0f0f0f0f-0000-4000-8000-000000000002"}})),
        # not JSON at all
        ("ReplicaSet", "default", "torn", 902, '{"apiVersion": "apps/v1", "kind": "Repl'),
        # a spec field of the wrong type
        ("ReplicaSet", "default", "typed", 903, _row({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "typed", "namespace": "default",
                         "uid": "0f0f0f0f-0000-4000-8000-000000000003"},
            "spec": {"replicas": "three", "selector": {"matchLabels": {"app": "t"}},
                     "template": {"metadata": {"labels": {"app": "t"}}, "spec": spec}}})),
        # well typed but invalid: a container without a name (crashed the kubelet at start)
        ("Pod", "default", "noname", 904, _row({
            "apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"command": ["true"]}]},
            "metadata": {**pod_meta, "name": "noname",
                         "uid": "0f0f0f0f-0000-4000-8000-000000000004"}})),
        # well typed but invalid: a selector that misses its template (pods without end)
        ("ReplicaSet", "default", "mismatch", 905, _row({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "mismatch", "namespace": "default",
                         "uid": "0f0f0f0f-0000-4000-8000-000000000005"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "a"}},
                     "template": {"metadata": {"labels": {"app": "b"}}, "spec": spec}}})),
    ]


def test_start_skips_reports_and_doctor_repairs_objects_that_cannot_load(daemon: Daemon):
    daemon.apply(SETUP)
    daemon.stop()
    db = sqlite3.connect(daemon.root / "state.db")
    db.executemany("INSERT INTO objects VALUES (?, ?, ?, ?, ?)", corrupt_rows())
    db.commit()
    db.close()

    daemon.start()  # must come up, not crash-loop
    sock = str(daemon.socket)
    assert hostile.healthz_ms(sock) < 100
    health = daemon.client.health()
    assert health["status"] == "ok" and health["unloadableObjects"] == 6, health
    log = daemon.log_path.read_text()
    for key in ("Pod/default/garbage", "ReplicaSet/default/torn", "ReplicaSet/default/typed",
                "Pod/default/noname", "ReplicaSet/default/mismatch", "Pod/default/ "):
        assert key.strip() in log, key

    # Reads work and say that something is missing; the good objects are all there.
    got = daemon.cli("get", "pods,rs")
    assert "web" in got.stdout
    assert "Warning: 6 stored object(s) could not be loaded" in got.stderr, got.stderr
    assert "Traceback" not in got.stderr
    # The controllers run: scaling the good ReplicaSet makes a pod.
    daemon.client.scale("ReplicaSet", "web", "default", 1)
    wait_for(lambda: daemon.client.list("Pod", label_selector="app=web"), what="a web pod")
    # The name of an unloadable object is not silently taken over.
    refused = daemon.cli("apply", "-f", "-", check=False, input=SETUP.replace(
        "name: web", "name: typed").replace("app: web", "app: t"))
    assert refused.returncode != 0 and "doctor" in refused.stderr, refused

    listed = daemon.cli("doctor", check=False)
    assert listed.returncode == 1
    assert "Pod default/garbage: status: must be an object" in listed.stdout, listed.stdout
    assert "ReplicaSet default/torn: not valid JSON" in listed.stdout, listed.stdout
    assert "ReplicaSet default/typed: spec.replicas" in listed.stdout, listed.stdout
    assert "Pod default/noname: spec.containers[0].name: Required" in listed.stdout
    assert "ReplicaSet default/mismatch: spec.template.metadata.labels" in listed.stdout

    repaired = daemon.cli("doctor", "--repair")
    backups = sorted((daemon.root / "doctor-backup").iterdir())
    assert len(backups) == 6, repaired.stdout
    saved = {json.loads(p.read_text())["name"]: json.loads(p.read_text()) for p in backups}
    assert saved["torn"]["data"] == corrupt_rows()[2][4]
    assert json.loads(saved["garbage"]["data"])["status"] == "garbage"
    assert daemon.client.health() == {"status": "ok"}
    assert daemon.cli("doctor").stdout.strip() == "store: every object loaded"
    assert "Warning" not in daemon.cli("get", "pods").stderr

    # The next start is clean and kept every good object.
    daemon.stop()
    daemon.start()
    assert daemon.client.health() == {"status": "ok"}
    assert daemon.client.get("ReplicaSet", "web")["spec"]["replicas"] == 1
    sqlite = sqlite3.connect(daemon.root / "state.db")
    try:
        assert sqlite.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        names = {r[0] for r in sqlite.execute("SELECT name FROM objects")}
    finally:
        sqlite.close()
    assert not names & {"", "garbage", "torn", "typed", "noname", "mismatch"}
    assert not any(n.startswith("mismatch-") for n in names)
