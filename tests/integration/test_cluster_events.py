"""Events from agents: an agent's kubelet posts its events (container started, probe failed,
killing) through the API, as the kubelet does; they are kept in etcd beside the objects, so
`describe pod` on either of two servers shows them, counted per series, and a server that
restarts still has them. A posted Event the API cannot accept is refused naming the field."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.clusternet import running_cluster
from tinykube.client import Client
from tinykube.model.errors import Invalid
from tinykube.testing.daemon import wait_for

pytestmark = pytest.mark.root

POD = """
apiVersion: v1
kind: Pod
metadata: {{name: probed}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    command: [sh, -c, 'trap "exit 0" TERM; while :; do sleep 0.1; done']
    readinessProbe:
      exec: {{command: [sh, -c, 'echo not-yet; exit 1']}}
      periodSeconds: 1
"""


@pytest.fixture
def cluster(tmp_path, etcd):
    with running_cluster(tmp_path, servers=2, store=etcd.store_flag) as c:
        yield c


def describe(cluster, server: int) -> str:
    result = subprocess.run([sys.executable, "-m", "tinykube.cli.main", "--socket",
                             str(cluster.socket_of(server)), "describe", "pod", "probed"],
                            capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr


def pod_events(cluster, server: int, uid: str) -> dict[str, dict]:
    with Client(cluster.socket_of(server)) as client:
        items = client.list("Event", "default")
    return {e["reason"]: e for e in items if e["involvedObject"].get("uid") == uid}


def test_agent_events_are_shared_by_the_servers_and_shown_by_describe(cluster):
    agent = cluster.add_agent()
    subprocess.run([sys.executable, "-m", "tinykube.cli.main", "--socket",
                    str(cluster.socket_of(1)), "apply", "-f", "-"],
                   input=POD.format(node=agent.name), text=True, check=True,
                   capture_output=True, timeout=60)
    uid = cluster.client.get("Pod", "probed", "default")["metadata"]["uid"]

    def counted_twice(server: int) -> dict | None:
        found = pod_events(cluster, server, uid)
        unhealthy = found.get("Unhealthy")
        return found if unhealthy and unhealthy["count"] >= 2 and "Started" in found else None

    for server in (1, 2):
        found = wait_for(lambda server=server: counted_twice(server), timeout=60,
                         what=f"the agent's events on server{server}")
        assert found["Started"]["source"] == {"component": "kubelet", "host": agent.name}
        assert found["Unhealthy"]["type"] == "Warning"
        assert found["Unhealthy"]["message"].startswith("Readiness probe failed")
        text = describe(cluster, server)
        assert "Started container main" in text and "Readiness probe failed" in text, text
        assert "kubelet" in text
    # A restarted server lists them again from etcd.
    cluster.servers[1].stop()
    cluster.servers[1].start()
    wait_for(lambda: Client(cluster.socket_of(2)).healthy(), timeout=30, what="server2 back")
    assert "Started" in wait_for(lambda: pod_events(cluster, 2, uid), timeout=30,
                                 what="events after server2's restart")
    # Deleting the pod: the agent's Killing event reaches the other server.
    cluster.client.delete("Pod", "probed", "default")
    wait_for(lambda: "Killing" in pod_events(cluster, 2, uid), timeout=60,
             what="the Killing event on server2")


def test_a_posted_event_the_api_cannot_accept_is_refused_naming_the_field(cluster):
    def post(event: dict) -> None:
        with Client(cluster.socket_of(1)) as client:
            client.request("POST", "/api/v1/namespaces/default/events", body=event)

    good = {"apiVersion": "v1", "kind": "Event", "metadata": {"generateName": "x."},
            "involvedObject": {"kind": "Pod", "name": "x", "namespace": "default"},
            "type": "Normal", "reason": "Tested", "message": "fine"}
    post(good)
    with Client(cluster.socket_of(1)) as client:
        assert [e["message"] for e in client.list("Event", "default")
                if e["reason"] == "Tested"] == ["fine"]
    for broken, field in (({"involvedObject": {"kind": "Pod"}}, "involvedObject.name"),
                          ({"type": "Loud"}, "type"),
                          ({"reason": ""}, "reason"),
                          ({"involvedObject": {"kind": "Pod", "name": "x",
                                               "namespace": "other"}},
                           "involvedObject.namespace")):
        with pytest.raises(Invalid) as refused:
            post({**good, **broken})
        assert field in str(refused.value)
