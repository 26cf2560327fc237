"""Probes for real, run inside the pod's network namespace (a real Kubelet and Store)."""

from __future__ import annotations

import socket

import pytest
import trio

from tests.integration.test_kubelet import Node, condition, container_status, node, sh

__all__ = ["node"]  # the fixture, re-used from test_kubelet

pytestmark = pytest.mark.root

SERVER = ["python3", "-m", "http.server", "18089", "--directory", "/www"]


def www(pod: dict, node: Node):
    return node.tmp / "pods" / pod["metadata"]["uid"] / "volumes" / "www"


async def test_failing_exec_liveness_restarts_the_container(node: Node):
    await node.create("live", [sh("sleep 1000", "app", livenessProbe={
        "exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 2})],
        terminationGracePeriodSeconds=1)
    pod = await node.wait_for("live", lambda p: bool(p and p.get("status"))
                              and container_status(p, "app")["restartCount"] >= 2, 20,
                              "2 restarts")
    assert pod is not None
    reasons = {reason for reason, _ in node.events("live")}
    assert {"Unhealthy", "Killing"} <= reasons
    messages = [m for r, m in node.events("live") if r == "Killing"]
    assert any("failed liveness probe" in m for m in messages)


async def test_passing_exec_liveness_keeps_the_container(node: Node):
    await node.create("fine", [sh("touch /tmp/tk-probe-ok-$$; sleep 1000", "app", livenessProbe={
        "exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 1})])
    await node.wait_phase("fine", "Running")
    await trio.sleep(2.5)
    pod = node.store.get("Pod", "default", "fine")
    assert container_status(pod, "app")["restartCount"] == 0
    assert "Unhealthy" not in {r for r, _ in node.events("fine")}


async def test_http_readiness_flips_ready(node: Node):
    pod = await node.create("ready", [{"name": "web", "command": SERVER,
        "volumeMounts": [{"name": "www", "mountPath": "/www"}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 18089}, "periodSeconds": 1,
                           "failureThreshold": 1}}],
        volumes=[{"name": "www", "emptyDir": {}}])
    pod = await node.wait_phase("ready", "Running")
    await trio.sleep(1.5)
    pod = node.store.get("Pod", "default", "ready")
    assert condition(pod, "Ready") == "False"  # 404 until the file exists
    assert container_status(pod, "web")["ready"] is False
    (www(pod, node) / "ready").write_text("ok")
    pod = await node.wait_for("ready", lambda p: condition(p, "Ready") == "True", 5, "Ready")
    assert container_status(pod, "web")["ready"] is True
    ready_since = next(c["lastTransitionTime"] for c in pod["status"]["conditions"]
                       if c["type"] == "Ready")
    (www(pod, node) / "ready").unlink()
    pod = await node.wait_for("ready", lambda p: condition(p, "Ready") == "False", 5,
                              "not Ready")
    assert container_status(pod, "web")["restartCount"] == 0  # readiness never restarts
    assert any("404" in m for r, m in node.events("ready") if r == "Unhealthy")
    assert ready_since is not None


async def test_tcp_and_http_probes_reach_the_pods_own_port(node: Node):
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", 18089)) != 0, "the host must have nothing on 18089"
    await node.create("own", [{"name": "web", "command": SERVER,
        "ports": [{"name": "http", "containerPort": 18089}],
        "volumeMounts": [{"name": "www", "mountPath": "/www"}],
        "startupProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1,
                         "failureThreshold": 10},
        "livenessProbe": {"httpGet": {"path": "/", "port": 18089}, "periodSeconds": 1,
                          "failureThreshold": 1},
        "readinessProbe": {"tcpSocket": {"port": 18089, "host": "127.0.0.1"},
                           "periodSeconds": 1}}],
        volumes=[{"name": "www", "emptyDir": {}}])
    pod = await node.wait_for("own", lambda p: condition(p, "Ready") == "True", 10, "Ready")
    await trio.sleep(2.5)  # a few liveness rounds
    pod = node.store.get("Pod", "default", "own")
    cs = container_status(pod, "web")
    assert cs["started"] is True and cs["ready"] is True and cs["restartCount"] == 0
    assert "Killing" not in {r for r, _ in node.events("own")}


async def test_tcp_probe_fails_when_nothing_listens_in_the_pod(node: Node):
    await node.create("deaf", [sh("sleep 1000", "app", readinessProbe={
        "tcpSocket": {"port": 18089}, "periodSeconds": 1, "timeoutSeconds": 1})])
    await node.wait_phase("deaf", "Running")
    await trio.sleep(2)
    pod = node.store.get("Pod", "default", "deaf")
    assert condition(pod, "Ready") == "False"
    unhealthy = [m for r, m in node.events("deaf") if r == "Unhealthy"]
    assert unhealthy and "Readiness probe failed" in unhealthy[0]


async def test_initial_delay_counts_from_the_spawn_not_from_the_bookkeeping(node: Node,
                                                                            monkeypatch):
    """initialDelaySeconds counts from the container's start (the kubelet's prober counts
    from the runtime's StartedAt), not from after the record write and the Started event
    that follow the spawn: those took 14-184 ms in a loaded rollout, each run's first probe
    that much late. Here the Started event is held up for as long as the initial delay: the
    probe, due already when the container's task goes on, runs at once."""
    delay = 2.0
    record_event = node.store.record_event
    returned: list[float] = []

    async def slow_started(obj, type_, reason, message, **kwargs):
        if reason == "Started":
            await trio.sleep(delay)  # a store too loaded to answer for that long
            returned.append(trio.current_time())
        return await record_event(obj, type_, reason, message, **kwargs)

    monkeypatch.setattr(node.store, "record_event", slow_started)
    await node.create("prompt", [sh("sleep 1000", "app", readinessProbe={
        "exec": {"command": ["true"]}, "initialDelaySeconds": int(delay),
        "periodSeconds": 3600})])
    await node.wait_for("prompt", lambda p: condition(p, "Ready") == "True", 30, "Ready")
    ready_at = trio.current_time()
    assert returned, "the Started event was recorded"
    # Counted from after the event, the first probe could not come before this:
    assert ready_at < returned[0] + delay
