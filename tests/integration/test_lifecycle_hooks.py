"""Lifecycle hooks on a real daemon (issue 17), as the kubelet runs them:

- postStart runs in the container after it started (exec sees the container's files and
  hostname); a failing one is a `FailedPostStartHook` event and the container is killed and
  restarted by its policy;
- preStop runs before SIGTERM (the order is read from a file both write) and counts against
  the grace period: a preStop longer than the grace period is cut, the pod still goes; a
  `sleep` preStop delays the SIGTERM; a failing one is a `FailedPreStopHook` event and the
  stop goes on;
- httpGet hooks reach the container's port from the pod's network namespace;
- a tcpSocket hook is accepted by the API (deprecated), and fails when run, as the kubelet
  has no runner for it.

Times come from the containers themselves (`date +%s.%N` into a hostPath file).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.daemon import wait_for

pytestmark = pytest.mark.root

TERM_TRAP = "trap 'echo term $(date +%s.%N) >> /gate/order; exit 0' TERM"
FOREVER = "while :; do sleep 0.1; done"


def pod(name: str, gate: Path, lifecycle: dict, script: str = f"{TERM_TRAP}; {FOREVER}",
        grace: int = 10, restart: str = "Always", **container) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": grace,
                 "volumes": [{"name": "gate", "hostPath": {"path": str(gate)}}],
                 "containers": [{"name": "c", "command": ["sh", "-c", script],
                                 "lifecycle": lifecycle,
                                 "volumeMounts": [{"name": "gate", "mountPath": "/gate"}],
                                 **container}]}})


def lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def reasons(daemon, name: str) -> list[str]:
    return [e["reason"] for e in daemon.client.events(daemon.pod(name))]


def event_message(daemon, name: str, reason: str) -> str:
    return next(e["message"] for e in daemon.client.events(daemon.pod(name))
                if e["reason"] == reason)


def delete_and_wait_gone(daemon, name: str, timeout: float = 60) -> float:
    """Delete the pod; returns the wall-clock time the delete was sent."""
    sent = time.time()
    daemon.cli("delete", "pod", name, "--wait=false")
    wait_for(lambda: not any(p["metadata"]["name"] == name
                             for p in daemon.client.list("Pod", "default")),
             timeout=timeout, what=f"pod {name} gone")
    return sent


def test_post_start_runs_in_the_container(daemon, tmp_path):
    hook = {"postStart": {"exec": {"command": [
        "sh", "-c", "echo poststart $HOSTNAME $(cat /gate/marker) >> /gate/order"]}}}
    (tmp_path / "marker").write_text("seen\n")
    daemon.apply(pod("poststart", tmp_path, hook,
                     script=f"echo main >> /gate/order; {FOREVER}"))
    daemon.wait_ready("poststart")
    wait_for(lambda: len(lines(tmp_path / "order")) == 2, timeout=10, what="both lines")
    assert sorted(map(tuple, lines(tmp_path / "order"))) == [
        ("main",), ("poststart", "poststart", "seen")]
    assert "FailedPostStartHook" not in reasons(daemon, "poststart")


def test_a_failing_post_start_kills_and_restarts_the_container(daemon, tmp_path):
    hook = {"postStart": {"exec": {"command": ["sh", "-c", "echo nope; exit 3"]}}}
    daemon.apply(pod("badstart", tmp_path, hook, grace=1))
    daemon.wait_pod("badstart",
                    lambda p: p["status"]["containerStatuses"][0]["restartCount"] >= 1,
                    timeout=60, what="container restarted")
    message = event_message(daemon, "badstart", "FailedPostStartHook")
    assert message.startswith("Exec lifecycle hook ([sh -c echo nope; exit 3]) for Container "
                              '"c" in Pod "badstart_default(')
    assert "exited with 3" in message and "nope" in message
    # Killed by the kubelet's stop: SIGTERM first (the trap wrote its line).
    wait_for(lambda: any(line[0] == "term" for line in lines(tmp_path / "order")),
             timeout=10, what="SIGTERM")


def test_a_failing_post_start_under_never_leaves_the_container_terminated(daemon, tmp_path):
    hook = {"postStart": {"exec": {"command": ["false"]}}}
    # No TERM handler: as PID 1 it ignores SIGTERM and is SIGKILLed after the grace period.
    daemon.apply(pod("badnever", tmp_path, hook, script=FOREVER, grace=1, restart="Never"))
    p = daemon.wait_pod("badnever", lambda p: p["status"]["phase"] == "Failed", timeout=30,
                        what="Failed")
    cs = p["status"]["containerStatuses"][0]
    assert cs["state"]["terminated"]["exitCode"] == 137 and cs["restartCount"] == 0
    assert "FailedPostStartHook" in reasons(daemon, "badnever")


def test_pre_stop_runs_before_sigterm(daemon, tmp_path):
    hook = {"preStop": {"exec": {"command": [
        "sh", "-c", "echo prestop $(date +%s.%N) >> /gate/order; sleep 1; "
                    "echo prestop-end $(date +%s.%N) >> /gate/order"]}}}
    daemon.apply(pod("prestop", tmp_path, hook))
    daemon.wait_ready("prestop")
    delete_and_wait_gone(daemon, "prestop")
    order = lines(tmp_path / "order")
    assert [line[0] for line in order] == ["prestop", "prestop-end", "term"]
    assert float(order[2][1]) >= float(order[1][1])


def test_pre_stop_sleep_delays_sigterm(daemon, tmp_path):
    daemon.apply(pod("sleepy", tmp_path, {"preStop": {"sleep": {"seconds": 2}}}))
    daemon.wait_ready("sleepy")
    sent = delete_and_wait_gone(daemon, "sleepy")
    (term,) = lines(tmp_path / "order")
    assert term[0] == "term"
    assert float(term[1]) - sent >= 2.0, "SIGTERM came before the preStop sleep ended"


def test_pre_stop_counts_against_the_grace_period(daemon, tmp_path):
    # A preStop of 120 s in a pod with a 3 s grace period: cut at 3 s, then SIGTERM, and the
    # pod is gone long before the hook would have ended.
    hook = {"preStop": {"exec": {"command": [
        "sh", "-c", "echo prestop >> /gate/order; sleep 120"]}}}
    daemon.apply(pod("graceful", tmp_path, hook, grace=3))
    daemon.wait_ready("graceful")
    sent = delete_and_wait_gone(daemon, "graceful", timeout=60)
    order = lines(tmp_path / "order")
    assert [line[0] for line in order] == ["prestop", "term"]
    waited = float(order[1][1]) - sent
    assert 3.0 <= waited < 60, f"SIGTERM {waited:.1f}s after the delete"


def test_a_failing_pre_stop_is_an_event_and_the_stop_goes_on(daemon, tmp_path):
    hook = {"preStop": {"exec": {"command": ["sh", "-c", "exit 7"]}}}
    daemon.apply(pod("badstop", tmp_path, hook))
    daemon.wait_ready("badstop")
    uid = daemon.pod("badstop")["metadata"]["uid"]
    delete_and_wait_gone(daemon, "badstop")
    assert [line[0] for line in lines(tmp_path / "order")] == ["term"]
    events = daemon.client.events({"metadata": {"namespace": "default", "uid": uid}})
    failed = [e for e in events if e["reason"] == "FailedPreStopHook"]
    assert failed and failed[0]["type"] == "Warning"
    assert "exited with 7" in failed[0]["message"]


HTTP_SERVER = """
import http.server, sys, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open('/gate/order', 'a') as f:
            f.write('get %s %f\\n' % (self.path, time.time()))
        self.send_response(500)  # the kubelet does not look at the status code
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(('0.0.0.0', 8080), H).serve_forever()
"""


def test_http_get_pre_stop_reaches_the_container(daemon, tmp_path):
    hook = {"preStop": {"httpGet": {"port": "web", "path": "/bye"}}}
    manifest = json.loads(pod("httphook", tmp_path, hook, grace=2,
                              ports=[{"name": "web", "containerPort": 8080}],
                              readinessProbe={"tcpSocket": {"port": 8080},
                                              "periodSeconds": 1}))
    manifest["spec"]["containers"][0]["command"] = ["python3", "-c", HTTP_SERVER]
    daemon.apply(json.dumps(manifest))
    daemon.wait_ready("httphook")
    uid = daemon.pod("httphook")["metadata"]["uid"]
    delete_and_wait_gone(daemon, "httphook")
    assert [line[:2] for line in lines(tmp_path / "order")] == [["get", "/bye"]]
    events = daemon.client.events({"metadata": {"namespace": "default", "uid": uid}})
    assert "Killing" in [e["reason"] for e in events]
    assert "FailedPreStopHook" not in [e["reason"] for e in events]


def test_a_tcp_socket_hook_is_accepted_and_fails_when_run(daemon, tmp_path):
    hook = {"postStart": {"tcpSocket": {"port": 8080}}}
    daemon.apply(pod("tcphook", tmp_path, hook, grace=1))
    daemon.wait_pod("tcphook",
                    lambda p: p["status"]["containerStatuses"][0]["restartCount"] >= 1,
                    timeout=60, what="container restarted")
    assert "invalid handler" in event_message(daemon, "tcphook", "FailedPostStartHook")
