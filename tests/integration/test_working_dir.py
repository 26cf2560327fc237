"""`workingDir` that does not exist is created, as runc does (issue 14), without touching
the host's file system and without following a symlink a container planted in a volume."""

from __future__ import annotations

import json
import os

import pytest

from tests.integration.daemon import wait_for

pytestmark = pytest.mark.root


def pod(name: str, script: str, working_dir: str, restart: str = "Always") -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1, "restartPolicy": restart,
                 "containers": [{"name": "c", "command": ["sh", "-c", script],
                                 "workingDir": working_dir,
                                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                 "volumes": [{"name": "data", "emptyDir": {}}]}})


def test_a_missing_working_dir_is_created_without_touching_the_host(daemon):
    where = "/tinykube-test-nowhere/deep/dir"
    assert not os.path.exists("/tinykube-test-nowhere")
    daemon.apply(pod("wd", "pwd; touch here; sleep 3600", where))
    daemon.wait_running("wd")
    wait_for(lambda: daemon.cli("logs", "wd").stdout == where + "\n", what="pwd logged")
    assert daemon.exec("wd", "ls", where).stdout == "here\n"
    assert not os.path.exists("/tinykube-test-nowhere"), "created on the host"


def test_a_working_dir_inside_a_volume_is_created_in_the_volume(daemon):
    daemon.apply(pod("wd", "pwd; echo x > f; sleep 3600", "/data/work/sub"))
    daemon.wait_running("wd")
    wait_for(lambda: daemon.cli("logs", "wd").stdout == "/data/work/sub\n", what="pwd")
    uid = daemon.pod("wd")["metadata"]["uid"]
    on_host = daemon.root / "pods" / uid / "volumes" / "data" / "work" / "sub" / "f"
    wait_for(on_host.exists, what="the file in the volume")


def test_a_symlink_planted_in_a_volume_is_not_followed_for_the_working_dir(daemon, tmp_path):
    """A first pod plants `w -> <a host directory>` in its claim; a second pod of the same
    claim with workingDir /data/w/made must be refused, not create `made` on the host."""
    outside = tmp_path / "host-dir"
    outside.mkdir()
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"},
             "spec": {"accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": "1Mi"}}}}
    planter = json.loads(pod("planter", f"ln -s {outside} /data/w; sleep 3600", "/"))
    planter["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "c"}}]
    daemon.apply(json.dumps(claim) + "\n---\n" + json.dumps(planter))
    link = daemon.root / "volumes" / "default" / "c" / "w"
    wait_for(link.is_symlink, what="the planted symlink")
    victim = json.loads(pod("victim", "pwd; sleep 3600", "/data/w/made"))
    victim["spec"]["volumes"] = planter["spec"]["volumes"]
    daemon.apply(json.dumps(victim))

    def refused() -> bool:
        statuses = (daemon.pod("victim").get("status") or {}).get("containerStatuses") or []
        waiting = statuses[0].get("state", {}).get("waiting", {}) if statuses else {}
        return "symlink" in (waiting.get("message") or "")
    wait_for(refused, timeout=60, what="the container refused with a symlink error")
    assert not (outside / "made").exists(), "followed a planted symlink as root"
    assert os.listdir(outside) == []
