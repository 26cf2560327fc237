"""The foundation end to end: a real daemon driven by the real CLI."""

import json
import signal

import pytest

from tests.integration.daemon import wait_for
from tests.integration.manifests import documents, workload

pytestmark = pytest.mark.root

MULTI = documents(workload("Deployment", "web"),
                  workload("ReplicationController", "legacy", selector=False))


def test_apply_prints_one_line_per_object_and_is_idempotent(daemon):
    out = daemon.apply(MULTI)
    assert out.splitlines() == ["deployment.apps/web created",
                                "replicationcontroller/legacy created"]
    again = daemon.apply(MULTI)
    assert again.splitlines() == ["deployment.apps/web unchanged",
                                  "replicationcontroller/legacy unchanged"]
    changed = daemon.apply(MULTI.replace("replicas: 0\n  selector", "replicas: 1\n  selector"))
    assert changed.splitlines()[0] == "deployment.apps/web configured"


def test_get_json_is_kubernetes_shaped(daemon):
    daemon.apply(MULTI)
    obj = daemon.get_json("deploy", "web")
    assert obj["apiVersion"] == "apps/v1" and obj["kind"] == "Deployment"
    meta = obj["metadata"]
    for field in ("uid", "resourceVersion", "generation", "creationTimestamp", "namespace"):
        assert field in meta, field
    assert obj["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%",
                                                        "maxUnavailable": "25%"}
    listed = daemon.get_json("rc")
    assert listed["kind"] == "List" and listed["items"][0]["spec"]["selector"] == {
        "app": "legacy"}


@pytest.mark.parametrize("manifest, message", [
    ("kind: Pod\napiVersion: v1\nmetadata: {name: x\n", "line"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n"
     "  - {name: c, command: [sleep, '1'], comand: [x]}\n", "spec.containers[0].comand"),
    (MULTI.replace("template:\n    metadata: {labels: {app: web}}",
                   "template:\n    metadata: {labels: {app: other}}"),
     "spec.template.metadata.labels"),
    ("apiVersion: v1\nkind: Widget\nmetadata: {name: x}\n", "Widget"),
])
def test_bad_input_is_a_clear_error_and_changes_nothing(daemon, manifest, message):
    daemon.apply(MULTI)
    wait_for(lambda: observed(daemon.get_json("all")), what="controllers caught up")
    before = declared(daemon.get_json("all"))
    result = daemon.cli("apply", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert declared(daemon.get_json("all")) == before


def observed(listing: dict) -> bool:
    """The deployment's ReplicaSet exists and every controller has seen its object."""
    kinds = {item["kind"] for item in listing["items"]}
    return "ReplicaSet" in kinds and all(
        (item.get("status") or {}).get("observedGeneration") == item["metadata"]["generation"]
        for item in listing["items"])


def declared(listing: dict) -> list[dict]:
    """What an apply could change: each object without its status and resourceVersion,
    which the controllers keep writing while the objects just applied come up."""
    objs = []
    for item in listing["items"]:
        obj = {k: v for k, v in item.items() if k != "status"}
        obj["metadata"] = {k: v for k, v in item["metadata"].items()
                           if k not in ("resourceVersion", "managedFields")}
        objs.append(obj)
    return objs


def test_missing_objects_and_daemon_down_are_one_line_errors(daemon, tmp_path):
    result = daemon.cli("get", "pod", "nope", check=False)
    assert result.returncode == 1 and 'pods "nope" not found' in result.stderr
    down = daemon.cli("--socket", str(tmp_path / "none.sock"), "get", "pods", check=False)
    assert down.returncode == 1 and "is `tinykube daemon` running?" in down.stderr
    assert len(down.stderr.strip().splitlines()) == 1


def test_sigkill_right_after_apply_loses_nothing(daemon):
    daemon.apply(MULTI)
    daemon.cli("scale", "deploy/web", "--replicas", "0")
    uid = daemon.get_json("deploy", "web")["metadata"]["uid"]
    daemon.stop(signal.SIGKILL)
    daemon.start()
    obj = daemon.get_json("deploy", "web")
    assert obj["metadata"]["uid"] == uid
    assert daemon.get_json("rc", "legacy")["metadata"]["name"] == "legacy"


def test_get_tables_and_output_formats(daemon):
    daemon.apply(MULTI)
    table = daemon.cli("get", "deploy").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:4] == ["web", "0/0", "0", "0"]
    rc = daemon.cli("get", "rc").stdout.splitlines()
    assert rc[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert daemon.cli("get", "deploy,rc", "-o", "name").stdout.split() == [
        "deployment.apps/web", "replicationcontroller/legacy"]
    assert "kind: Deployment" in daemon.cli("get", "deploy", "web", "-o", "yaml").stdout
    selected = json.loads(daemon.cli("get", "rc", "-l", "app=legacy", "-o", "json").stdout)
    assert len(selected["items"]) == 1
    assert daemon.cli("get", "rc", "-l", "app in (x,", check=False).returncode == 1
