"""Volume behaviour of issue 14 on a real daemon: emptyDir sizeLimit (eviction), medium
Memory (a tmpfs), hostPath.type checks, fsGroup on emptyDir and claim directories, and
claim clean-up / fsGroup never following a symlink a container planted."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon, wait_for
from tinykube.testing.lifecycle import running

pytestmark = pytest.mark.root


def pod(name: str, script: str, volumes: list, mounts: list, **spec) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1, "volumes": volumes, **spec,
                 "containers": [{"name": "c", "command": ["sh", "-c", script],
                                 "volumeMounts": mounts}]}})


DATA = [{"name": "d", "mountPath": "/data"}]


def test_an_empty_dir_over_its_size_limit_gets_the_pod_evicted(daemon):
    daemon.apply(pod("hog", "sleep 1; head -c 3000000 /dev/zero > /data/big; sleep 3600",
                     [{"name": "d", "emptyDir": {"sizeLimit": "1Mi"}}], DATA))
    evicted = daemon.wait_pod("hog", lambda p: p["status"]["phase"] == "Failed", timeout=60,
                              what="evicted")
    assert evicted["status"]["reason"] == "Evicted"
    assert 'EmptyDir volume "d" exceeds the limit "1Mi"' in evicted["status"]["message"]
    assert "Evicted" in {e["reason"] for e in daemon.client.events(evicted)}


def test_a_memory_empty_dir_is_a_tmpfs_of_its_size_limit(daemon):
    daemon.apply(pod("mem", "df -k /data | tail -1; head -c 3000000 /dev/zero > /data/big; "
                            "echo rc=$?; sleep 3600",
                     [{"name": "d", "emptyDir": {"medium": "Memory", "sizeLimit": "2Mi"}}],
                     DATA))
    daemon.wait_running("mem")
    wait_for(lambda: "rc=" in daemon.cli("logs", "mem").stdout, what="the write tried")
    out = daemon.cli("logs", "mem").stdout
    uid = daemon.pod("mem")["metadata"]["uid"]
    assert uid in Path("/proc/self/mountinfo").read_text(), "no tmpfs on the host"
    assert out.split()[0] == "tmpfs" and out.split()[1] == "2048", out
    assert "rc=1" in out, "a 3 MB write fitted in a 2 MiB tmpfs"
    daemon.client.delete("Pod", "mem", "default")
    wait_for(lambda: not daemon.client.list("Pod", "default"), what="pod gone")
    assert uid not in Path("/proc/self/mountinfo").read_text(), "tmpfs left mounted"


@pytest.mark.parametrize("kind, make, ok", [
    ("Directory", "dir", True), ("Directory", "file", False), ("Directory", None, False),
    ("File", "file", True), ("File", "dir", False),
    ("Socket", "socket", True), ("Socket", "file", False),
    ("CharDevice", "/dev/null", True), ("CharDevice", "file", False),
    ("BlockDevice", "file", False),
])
def test_host_path_type_is_checked(daemon, tmp_path, kind, make, ok):
    path = tmp_path / "thing"
    if make == "dir":
        path.mkdir()
    elif make == "file":
        path.write_text("x")
    elif make == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
    elif make is not None:
        path = make
    daemon.apply(pod("hp", "sleep 3600", [{"name": "d", "hostPath": {"path": str(path),
                                                                    "type": kind}}], DATA))
    if ok:
        daemon.wait_running("hp")
        return
    def refused() -> list[str]:
        return [e["message"] for e in daemon.client.events(daemon.pod("hp"))
                if e["reason"] == "FailedMount"]
    messages = wait_for(refused, timeout=30, what="a FailedMount event")
    assert "hostPath type check failed" in messages[0] and str(path) in messages[0]
    p = daemon.pod("hp")
    assert not any("running" in cs.get("state", {})
                   for cs in (p.get("status") or {}).get("containerStatuses") or [])


CLAIM = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"},
         "spec": {"accessModes": ["ReadWriteOnce"],
                  "resources": {"requests": {"storage": "1Mi"}}}}


def test_fs_group_lets_a_non_root_container_write_its_volumes(daemon, tmp_path):
    outside = tmp_path / "host-file"
    outside.write_text("host\n")
    os.chmod(outside, 0o600)
    before = os.stat(outside)
    # A first pod leaves a symlink to a host file in the claim (as root could).
    daemon.apply(json.dumps(CLAIM) + "\n---\n" + pod(
        "planter", f"mkdir -p /data/sub && echo x > /data/sub/f && ln -s {outside} /data/link; "
        "sleep 3600",
        [{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}], DATA))
    link = daemon.root / "volumes" / "default" / "c" / "link"
    wait_for(link.is_symlink, what="the planted symlink")
    daemon.client.delete("Pod", "planter", "default")
    wait_for(lambda: not daemon.client.list("Pod", "default"), what="planter gone")
    script = "id; echo ok > /scratch/a && echo ok > /data/b && echo ok > /data/sub/g && echo wrote"
    daemon.apply(pod("writer", script + "; sleep 3600",
                     [{"name": "d", "persistentVolumeClaim": {"claimName": "c"}},
                      {"name": "s", "emptyDir": {}}],
                     DATA + [{"name": "s", "mountPath": "/scratch"}],
                     securityContext={"runAsUser": 1000, "runAsGroup": 1000,
                                      "fsGroup": 2000}))
    wait_for(lambda: "wrote" in daemon.cli("logs", "writer").stdout, what="writes done")
    claim_dir = daemon.root / "volumes" / "default" / "c"
    st = os.stat(claim_dir)
    assert st.st_gid == 2000 and st.st_mode & stat.S_ISGID
    assert os.stat(claim_dir / "b").st_gid == 2000  # inherited through setgid
    after = os.stat(outside)
    assert (after.st_gid, after.st_mode) == (before.st_gid, before.st_mode), \
        "fsGroup followed a symlink to a host file"


def test_deleting_a_claim_never_follows_a_planted_symlink(daemon, tmp_path):
    outside = tmp_path / "host-dir"
    outside.mkdir()
    (outside / "precious").write_text("keep\n")
    daemon.apply(json.dumps(CLAIM) + "\n---\n" + pod(
        "planter", f"ln -s {outside} /data/link; ln -s {outside}/precious /data/file; "
        "sleep 3600", [{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}], DATA))
    claim_dir = daemon.root / "volumes" / "default" / "c"
    wait_for(lambda: (claim_dir / "file").is_symlink(), what="symlinks planted")
    daemon.client.delete("Pod", "planter", "default")
    wait_for(lambda: not daemon.client.list("Pod", "default"), what="pod gone")
    daemon.client.delete("PersistentVolumeClaim", "c", "default")
    wait_for(lambda: not claim_dir.exists(), what="claim directory removed")
    assert (outside / "precious").read_text() == "keep\n"


def test_a_pod_waits_pending_for_a_claim_that_does_not_exist(daemon):
    """Kubernetes keeps a pod whose persistentVolumeClaim does not exist Pending (an event
    names the claim) until the claim is created; then it starts and uses it."""
    daemon.apply(pod("waiter", "echo here > /data/f; sleep 3600",
                     [{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}], DATA))
    warned = wait_for(lambda: [e for e in daemon.client.events(daemon.pod("waiter"))
                               if e["reason"] == "FailedMount"], what="a FailedMount event")
    assert 'persistentvolumeclaim "c" not found' in warned[0]["message"]
    waiting = daemon.pod("waiter")
    assert waiting["status"]["phase"] == "Pending"
    assert not any("running" in (c.get("state") or {}) or "terminated" in (c.get("state") or {})
                   for c in waiting["status"].get("containerStatuses") or [])
    assert not (daemon.root / "volumes" / "default" / "c").exists()
    daemon.apply(json.dumps(CLAIM))
    daemon.wait_running("waiter")
    wait_for(lambda: (daemon.root / "volumes" / "default" / "c" / "f").exists(),
             what="the pod writing into the claim")


def run_covered(daemon, target: str) -> None:
    daemon.apply(pod("covered", f"ls {target} | wc -l; grep -q covered /etc/hosts && echo hosts; "
                                f"echo data > {target}/mine; cat {target}/mine; sleep 1; exit 3",
                     [{"name": "d", "emptyDir": {}}], [{"name": "d", "mountPath": target}],
                     restartPolicy="OnFailure"))
    restarted = daemon.wait_pod(
        "covered", lambda p: any(c.get("restartCount", 0) >= 1
                                 for c in p["status"].get("containerStatuses") or []),
        timeout=60, what="a restart after exit 3")
    last = restarted["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 3 and last["reason"] == "Error", last
    logs = daemon.cli("logs", "covered", "--previous").stdout.split()
    assert logs == ["0", "hosts", "data"], logs  # an empty volume; the pod's own /etc/hosts
    assert not (Path(target) / "mine").exists()


@pytest.mark.parametrize("cover", ["root", "parent"])
def test_a_volume_over_the_daemons_own_directory_works(daemon, cover):
    """An emptyDir whose mountPath covers where the daemon keeps the pod's files: the pod's
    own files (/etc/hosts, logs, exit codes) come from a place no volume can hide, so the
    container runs, logs and restarts, and the volume is what the app sees there."""
    run_covered(daemon, str(daemon.root if cover == "root" else daemon.root.parent))


def test_an_empty_dir_at_tmp_while_the_root_is_under_tmp():
    """The issue's case: an emptyDir at /tmp while --root is under /tmp."""
    base = Path(tempfile.mkdtemp(dir="/tmp", prefix="tinykube-gaps-"))
    try:
        with running(Daemon(base)) as daemon:
            run_covered(daemon, "/tmp")
    finally:
        shutil.rmtree(base, ignore_errors=True)
