"""Pod lifecycle details the kubelet gets right (issue 14), on a real daemon:

- the pause of a pod with restartPolicy Always dies: a new sandbox (new pause, new network)
  for the same pod, containers started again with restartCount up, a `SandboxChanged` event
  (kuberuntime_manager.go computePodActions); under Never the pod is Failed instead;
- a pod that a finalizer keeps in the store after its containers ended shows a terminal
  phase (Succeeded or Failed), not Running.
"""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest

from tests.integration.daemon import container_pid, wait_for
from tinykube.client import Client, StreamIdle
from tinykube.runtime.syscalls import proc_start_time, process_alive

pytestmark = pytest.mark.root


def pod(name: str, script: str, restart: str = "Always", **meta) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **meta},
        "spec": {"terminationGracePeriodSeconds": 2, "restartPolicy": restart,
                 "containers": [{"name": "c", "command": ["sh", "-c", script]}]}})


def pause_of(daemon, name: str) -> tuple[int, int]:
    uid = daemon.pod(name)["metadata"]["uid"]
    record = json.loads((daemon.run_dir / "pods" / f"{uid}.json").read_text())
    return record["pause"]["pid"], record["pause"]["start_time"]


def reasons(daemon, name: str) -> list[str]:
    return [e["reason"] for e in daemon.client.events(daemon.pod(name))]


@pytest.mark.parametrize("policy", ["Always", "OnFailure"])
def test_a_dead_pause_gets_a_new_sandbox_for_the_same_pod(daemon, policy):
    daemon.apply(pod("phoenix", "sleep 3600", policy))
    before = daemon.wait_running("phoenix")
    uid = before["metadata"]["uid"]
    old_pause = pause_of(daemon, "phoenix")
    os.kill(old_pause[0], signal.SIGKILL)

    def rebuilt(p: dict) -> bool:
        cs = p["status"]["containerStatuses"][0]
        return p["status"]["phase"] == "Running" and cs["restartCount"] == 1 \
            and "running" in cs["state"]
    after = daemon.wait_pod("phoenix", rebuilt, timeout=60, what="sandbox re-created")
    assert after["metadata"]["uid"] == uid, "a new pod instead of a new sandbox"
    new_pause = pause_of(daemon, "phoenix")
    assert new_pause != old_pause and process_alive(*new_pause)
    assert after["status"].get("podIP")
    assert "SandboxChanged" in reasons(daemon, "phoenix")
    assert daemon.exec("phoenix", "true").returncode == 0  # the containers run in the new one


def test_a_dead_pause_fails_a_pod_that_never_restarts(daemon):
    daemon.apply(pod("fragile", "sleep 3600", "Never"))
    daemon.wait_running("fragile")
    os.kill(pause_of(daemon, "fragile")[0], signal.SIGKILL)
    failed = daemon.wait_pod("fragile", lambda p: p["status"]["phase"] == "Failed",
                             timeout=30, what="Failed")
    assert failed["status"]["reason"] == "SandboxDied"


@pytest.mark.parametrize("script, phase", [
    ("sleep 3600", "Failed"),  # killed by SIGTERM: exit 143
    ("trap 'exit 0' TERM; while :; do sleep 0.1; done", "Succeeded"),
])
def test_a_finalizer_held_pod_shows_a_terminal_phase(daemon, script, phase):
    daemon.apply(pod("held", script, finalizers=["example.com/keep"]))
    daemon.wait_running("held")
    daemon.client.delete("Pod", "held", "default")
    ended = daemon.wait_pod("held", lambda p: p["status"]["phase"] == phase, timeout=30,
                            what=f"phase {phase}")
    assert "terminated" in ended["status"]["containerStatuses"][0]["state"]
    daemon.client.patch("Pod", "held", "default", {"metadata": {"finalizers": None}})
    wait_for(lambda: not daemon.client.list("Pod", "default"), what="pod gone")


def test_a_deleted_pod_is_written_with_a_terminal_phase_before_it_goes(daemon):
    """Kubernetes >= 1.27: once a deleted pod's containers have stopped, the kubelet writes
    the terminal phase (Succeeded if every container exited 0, else Failed) before the object
    is removed, whatever the restart policy: a watcher sees how the pod ended."""
    scripts = {"clean": ("trap 'exit 0' TERM; while :; do sleep 0.1; done", "Succeeded"),
               "killed": ("sleep 3600", "Failed")}  # PID 1 ignores SIGTERM: SIGKILL, 137
    expected = {}
    for policy in ("Always", "OnFailure", "Never"):
        for how, (script, phase) in scripts.items():
            name = f"{policy.lower()}-{how}"
            daemon.apply(pod(name, script, policy))
            expected[name] = phase
    for name in expected:
        daemon.wait_running(name)

    last_phase: dict[str, str] = {}
    gone: set[str] = set()
    listed = threading.Event()

    def watch() -> None:
        with Client(daemon.socket) as client:
            try:
                for type_, obj in client.watch("Pod", "default", idle_timeout=60):
                    name = obj["metadata"]["name"]
                    if type_ == "DELETED":
                        gone.add(name)
                    else:
                        last_phase[name] = obj["status"].get("phase", "")
                    if len(last_phase) == len(expected):
                        listed.set()
                    if gone >= set(expected):
                        return
            except StreamIdle:
                return
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert listed.wait(30), "the watch never listed the pods"
        for name in expected:
            daemon.client.delete("Pod", name, "default")
    finally:
        watcher.join(120)
    assert gone == set(expected), gone
    assert last_phase == expected


@pytest.mark.parametrize("second_delete", ["shorter", "force"])
def test_a_second_delete_cuts_a_running_grace_period_short(daemon, second_delete):
    """A pod already terminating under a 60 s grace period is deleted again with 1 s, or
    forced (grace 0): the kubelet kills it at the new, earlier end instead of waiting out the
    first period (kubectl's `delete --grace-period=1` or `--force` on a stuck pod). `sleep` as
    PID 1 ignores SIGTERM, so only the shortened period can end it before 60 s."""
    manifest = json.loads(pod("stuck", "sleep 3600"))
    manifest["spec"]["terminationGracePeriodSeconds"] = 60
    daemon.apply(json.dumps(manifest))
    container = container_pid(daemon.wait_running("stuck"))
    container = (container, proc_start_time(container))
    daemon.client.delete("Pod", "stuck", "default")
    wait_for(lambda: "Killing" in reasons(daemon, "stuck"), what="the graceful stop begun")
    assert process_alive(*container), "SIGTERM alone ended a PID 1 that ignores it"
    if second_delete == "shorter":
        daemon.client.delete("Pod", "stuck", "default", grace_period=1)
        assert daemon.pod("stuck")["metadata"]["deletionGracePeriodSeconds"] == 1
    else:
        daemon.client.delete("Pod", "stuck", "default", grace_period=0)
    # Well inside the first period's 60 s: only the new end can explain it.
    wait_for(lambda: not process_alive(*container), timeout=20, what="the container killed")
    wait_for(lambda: not daemon.client.list("Pod", "default"), timeout=20,
             what="the pod removed")
