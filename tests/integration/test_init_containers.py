"""Init containers and native sidecars on a real daemon (issue 17), as the kubelet runs them:

- init containers run one at a time, in order, each to completion, before any app container
  (the order is read from a file the containers append to); meanwhile the pod is Pending and
  `get pods` says `Init:N/M`, then `PodInitializing`; `initContainerStatuses` are reported;
- a failing init container is retried with back-off (`Init:Error`/`Init:CrashLoopBackOff`),
  and under restartPolicy Never it fails the pod (`Init:Error`, phase Failed);
- `logs -c` and `exec -c` reach an init container;
- a native sidecar (`restartPolicy: Always`) starts in order (the next init container waits
  for its startup probe), keeps running, is restarted even in a Never pod, does not keep the
  pod from Succeeded, and is stopped (SIGTERM) once the app containers finished;
- a daemon restart does not run completed init containers again.

Containers wait for "gate" files the test creates in a hostPath directory, so each state is
observed while it holds, not raced.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.daemon import wait_for

pytestmark = pytest.mark.root


def container(name: str, script: str, **extra) -> dict:
    return {"name": name, "command": ["sh", "-c", script],
            "volumeMounts": [{"name": "shared", "mountPath": "/shared"},
                             {"name": "gate", "mountPath": "/gate"}], **extra}


def pod(name: str, gate: Path, inits: list[dict], apps: list[dict],
        restart: str = "Always") -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                 "volumes": [{"name": "shared", "emptyDir": {}},
                             {"name": "gate", "hostPath": {"path": str(gate)}}],
                 "initContainers": inits, "containers": apps}})


def wait_gate(name: str) -> str:
    return f"while [ ! -e /gate/{name} ]; do sleep 0.1; done"


def record(line: str) -> str:
    """Append a line to the host-visible order file."""
    return f"echo {line} >> /gate/order"


def get_pods_row(daemon, name: str) -> list[str]:
    out = daemon.cli("get", "pods", name).stdout.splitlines()
    return out[1].split()


def status_column(daemon, name: str) -> str:
    return get_pods_row(daemon, name)[2]


def init_state(p: dict, name: str) -> dict:
    return next(cs for cs in p["status"]["initContainerStatuses"] if cs["name"] == name)


def condition(p: dict, kind: str) -> dict:
    return next(c for c in p["status"]["conditions"] if c["type"] == kind)


def test_init_containers_run_in_order_to_completion_before_the_app(daemon, tmp_path):
    daemon.apply(pod("ordered", tmp_path, [
        container("first", f"{record('first')}; echo done > /shared/first"),
        container("second", f"{record('second-start')}; test -e /shared/first || exit 9; "
                            f"{wait_gate('second')}; {record('second-end')}"),
    ], [container("app", f"{record('app')}; sleep infinity")]))

    # The second init container runs (waiting for its gate): the pod is initializing.
    def second_running(p: dict) -> bool:
        return "running" in init_state(p, "second")["state"]
    p = daemon.wait_pod("ordered", second_running, timeout=30, what="second init running")
    assert p["status"]["phase"] == "Pending"
    first = init_state(p, "first")
    assert first["state"]["terminated"]["exitCode"] == 0
    assert first["state"]["terminated"]["reason"] == "Completed"
    assert first["ready"] is True
    app = p["status"]["containerStatuses"][0]
    assert app["state"] == {"waiting": {"reason": "PodInitializing"}}
    init_cond = condition(p, "Initialized")
    assert init_cond["status"] == "False"
    assert init_cond["reason"] == "ContainersNotInitialized"
    assert init_cond["message"] == "containers with incomplete status: [second]"
    assert get_pods_row(daemon, "ordered")[1:3] == ["0/1", "Init:1/2"]

    (tmp_path / "second").touch()
    p = daemon.wait_running("ordered")
    wait_for(lambda: "app" in (tmp_path / "order").read_text(), timeout=10, what="app ran")
    assert (tmp_path / "order").read_text().split() == ["first", "second-start", "second-end",
                                                         "app"]
    assert [cs["state"]["terminated"]["exitCode"]
            for cs in p["status"]["initContainerStatuses"]] == [0, 0]
    assert condition(p, "Initialized")["status"] == "True"
    daemon.wait_ready("ordered")
    assert status_column(daemon, "ordered") == "Running"


def test_a_failing_init_container_is_retried_with_back_off(daemon, tmp_path):
    daemon.apply(pod("retry", tmp_path, [
        container("setup", f"{record('try')}; test -e /gate/fixed || exit 3"),
    ], [container("app", f"{record('app')}; sleep infinity")]))

    p = daemon.wait_pod("retry", lambda p: init_state(p, "setup")["restartCount"] >= 1,
                        timeout=30, what="init retried")
    assert p["status"]["phase"] == "Pending"
    last = init_state(p, "setup")["lastState"]["terminated"]
    assert last["exitCode"] == 3 and last["reason"] == "Error"
    assert status_column(daemon, "retry") in ("Init:Error", "Init:CrashLoopBackOff")
    wait_for(lambda: status_column(daemon, "retry") == "Init:CrashLoopBackOff", timeout=30,
             what="Init:CrashLoopBackOff")
    assert "app" not in (tmp_path / "order").read_text()
    assert p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == \
        "PodInitializing"

    (tmp_path / "fixed").touch()
    daemon.wait_running("retry", timeout=60)
    wait_for(lambda: "app" in (tmp_path / "order").read_text(), timeout=10, what="app ran")


def test_a_failing_init_container_fails_a_pod_that_never_restarts(daemon, tmp_path):
    daemon.apply(pod("doomed", tmp_path, [
        container("setup", f"{record('setup')}; exit 3"),
        container("later", record("later")),
    ], [container("app", record("app"))], restart="Never"))
    p = daemon.wait_pod("doomed", lambda p: p["status"]["phase"] == "Failed", timeout=30,
                        what="Failed")
    setup = init_state(p, "setup")
    assert setup["state"]["terminated"]["exitCode"] == 3 and setup["restartCount"] == 0
    assert init_state(p, "later")["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert (tmp_path / "order").read_text().split() == ["setup"]
    assert status_column(daemon, "doomed") == "Init:Error"


def test_logs_and_exec_reach_an_init_container(daemon, tmp_path):
    daemon.apply(pod("talk", tmp_path, [
        container("setup", f"echo hello from setup; {wait_gate('go')}"),
    ], [container("app", "sleep infinity")]))
    daemon.wait_pod("talk", lambda p: "running" in init_state(p, "setup")["state"],
                    what="init running")
    wait_for(lambda: "hello from setup" in daemon.cli("logs", "talk", "-c", "setup").stdout,
             timeout=10, what="init container's log")
    out = daemon.exec("talk", "sh", "-c", "echo $HOSTNAME; ls /gate", container="setup")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "talk"
    (tmp_path / "go").touch()
    daemon.wait_running("talk")
    # Its log stays readable once it completed.
    assert "hello from setup" in daemon.cli("logs", "talk", "-c", "setup").stdout
    refused = daemon.cli("logs", "talk", "-c", "nope", check=False)
    assert refused.returncode != 0 and "not valid" in refused.stderr


SIDECAR_SCRIPT = (f"trap '{record('sidecar-term')}; exit 0' TERM; {record('sidecar-start')}; "
                  "sleep 1; touch /shared/sidecar-up; while :; do sleep 0.1; done")


def test_a_native_sidecar_starts_in_order_and_does_not_block_completion(daemon, tmp_path):
    sidecar = container("proxy", SIDECAR_SCRIPT, restartPolicy="Always",
                        startupProbe={"exec": {"command": ["test", "-e", "/shared/sidecar-up"]},
                                      "periodSeconds": 1})
    daemon.apply(pod("sidecar", tmp_path, [
        sidecar,
        container("migrate", f"test -e /shared/sidecar-up && {record('migrate')}"),
    ], [container("app", f"{wait_gate('finish')}; {record('app-done')}")], restart="Never"))

    def app_running(p: dict) -> bool:
        return "running" in p["status"]["containerStatuses"][0]["state"]
    p = daemon.wait_pod("sidecar", app_running, timeout=30, what="app running")
    assert p["status"]["phase"] == "Running"
    proxy = init_state(p, "proxy")
    assert "running" in proxy["state"] and proxy["started"] is True
    assert init_state(p, "migrate")["state"]["terminated"]["exitCode"] == 0
    # READY counts the sidecar as kubectl does: 2 containers, both ready.
    daemon.wait_ready("sidecar")
    assert get_pods_row(daemon, "sidecar")[1:3] == ["2/2", "Running"]

    (tmp_path / "finish").touch()
    done = daemon.wait_pod("sidecar", lambda p: p["status"]["phase"] == "Succeeded",
                           timeout=30, what="Succeeded")
    order = (tmp_path / "order").read_text().split()
    assert order == ["sidecar-start", "migrate", "app-done", "sidecar-term"]
    assert "terminated" in init_state(done, "proxy")["state"]
    assert status_column(daemon, "sidecar") == "Completed"


def test_a_sidecar_is_restarted_even_in_a_pod_that_never_restarts(daemon, tmp_path):
    sidecar = container("flaky", f"{record('flaky')}; test -e /shared/again || "
                                 "{ touch /shared/again; exit 1; }; sleep infinity",
                        restartPolicy="Always")
    daemon.apply(pod("flaky", tmp_path, [sidecar], [container("app", "sleep infinity")],
                     restart="Never"))
    p = daemon.wait_pod("flaky", lambda p: init_state(p, "flaky")["restartCount"] >= 1
                        and "running" in init_state(p, "flaky")["state"], timeout=30,
                        what="sidecar restarted")
    assert p["status"]["phase"] == "Running"
    assert (tmp_path / "order").read_text().split() == ["flaky", "flaky"]


def test_a_daemon_restart_does_not_run_completed_init_containers_again(daemon, tmp_path):
    daemon.apply(pod("restore", tmp_path, [
        container("once", record("once")),
    ], [container("app", "sleep infinity")]))
    before = daemon.wait_running("restore")
    wait_for(lambda: "running" in daemon.pod("restore")["status"]["containerStatuses"][0][
        "state"], timeout=30, what="app running")
    before = daemon.pod("restore")
    daemon.stop()
    daemon.start()
    # exec needs the new daemon's supervisor of the app: it exists once initialization (had
    # it run the init container again) is over.
    wait_for(lambda: daemon.exec("restore", "true").returncode == 0, timeout=30,
             what="app adopted by the new daemon")
    after = daemon.pod("restore")
    assert (tmp_path / "order").read_text().split() == ["once"]
    assert after["status"]["containerStatuses"][0]["containerID"] == \
        before["status"]["containerStatuses"][0]["containerID"]
    once = init_state(after, "once")
    assert once["state"]["terminated"]["exitCode"] == 0 and once["restartCount"] == 0
    assert after["status"]["phase"] == "Running"
