"""Per-node credentials: an agent trades the join token for a credential of its own node
(as a k3s agent joins), and that credential may do only what Kubernetes' Node authorizer
lets a kubelet do. The join token itself can no longer act as the admin."""

from __future__ import annotations

import ssl

import httpx
import pytest

from tests.integration.clusternet import running_cluster
from tinykube.testing.daemon import wait_for

pytestmark = pytest.mark.root

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                 "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "main", "command": [
                     "sh", "-c", 'trap "exit 0" TERM; while :; do sleep 0.1; done']}]}}}}


@pytest.fixture
def cluster(tmp_path):
    with running_cluster(tmp_path) as c:
        yield c


def https(cluster, token: str) -> httpx.Client:
    return httpx.Client(base_url=f"https://{cluster.listens[0]}",
                        verify=ssl.create_default_context(
                            cafile=str(cluster.root / "pki" / "ca.crt")),
                        headers={"authorization": f"Bearer {token}"}, timeout=30)


def test_a_node_credential_may_do_only_what_a_node_may(cluster):
    agent = cluster.add_agent()  # joined with its own credential: Ready, heartbeating
    admin_token = (cluster.root / "pki" / "admin.token").read_text().strip()
    join_token = (cluster.root / "pki" / "node.token").read_text().strip()
    admin = https(cluster, admin_token)
    assert admin.post("/apis/apps/v1/namespaces/default/deployments",
                      json=DEPLOYMENT).status_code == 201
    pod = wait_for(lambda: [p for p in admin.get("/api/v1/namespaces/default/pods").json()[
        "items"] if p.get("status", {}).get("phase") == "Running"], timeout=60, what="web running")[0]
    assert pod["spec"]["nodeName"] == agent.name

    # The join token only joins: anything else is refused.
    joiner = https(cluster, join_token)
    refused = joiner.get("/api/v1/namespaces/default/pods")
    assert refused.status_code == 403 and "only be exchanged" in refused.json()["message"]
    bad = joiner.post("/tinykube/v1/nodecredentials", json={"nodeName": "Not_A_Name"})
    assert bad.status_code == 422 and "nodeName" in bad.json()["message"]
    issued = joiner.post("/tinykube/v1/nodecredentials", json={"nodeName": "tkother"})
    assert issued.status_code == 201 and issued.json()["nodeName"] == "tkother"
    node = https(cluster, issued.json()["token"])

    # What a node may do: read pods, post events, register itself, set its pods' status.
    assert node.get("/api/v1/namespaces/default/pods").status_code == 200
    assert node.post("/api/v1/namespaces/default/events", json={
        "apiVersion": "v1", "kind": "Event", "metadata": {"generateName": "x."},
        "involvedObject": {"kind": "Pod", "name": "x", "namespace": "default"},
        "reason": "Tested", "message": "ok"}).status_code == 201
    own = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "tkother"},
           "spec": {"unschedulable": True}}
    assert node.post("/api/v1/nodes", json=own).status_code == 201
    mine = dict(pod, metadata={"name": "mine", "namespace": "default"},
                spec={**pod["spec"], "nodeName": "tkother"}, status={})
    assert admin.post("/api/v1/namespaces/default/pods", json=mine).status_code == 201
    stored = node.get("/api/v1/namespaces/default/pods/mine").json()
    stored["status"] = {"phase": "Pending", "message": "set by its node"}
    assert node.put("/api/v1/namespaces/default/pods/mine/status",
                    json=stored).status_code == 200

    # What it may not: the 403 names the node, the verb, the resource and the rule.
    gone = node.delete("/apis/apps/v1/namespaces/default/deployments/web")
    assert gone.status_code == 403
    assert gone.json()["message"] == (
        'deployments "web" is forbidden: User "system:node:tkother" cannot delete resource '
        '"deployments" in API group "apps" in the namespace "default": a node may not change '
        "it")
    other = admin.get(f"/api/v1/namespaces/default/pods/{pod['metadata']['name']}").json()
    other["status"]["phase"] = "Failed"
    stolen = node.put(f"/api/v1/namespaces/default/pods/{pod['metadata']['name']}/status",
                      json=other)
    assert stolen.status_code == 403
    assert f"pod is bound to node '{agent.name}'" in stolen.json()["message"]
    assert node.put(f"/api/v1/nodes/{agent.name}/status", json=admin.get(
        f"/api/v1/nodes/{agent.name}").json()).status_code == 403
    secrets = node.get("/api/v1/namespaces/kube-system/secrets")
    assert secrets.status_code == 403 and "may not read secrets" in secrets.json()["message"]
    # Nothing it was refused happened.
    assert admin.get("/apis/apps/v1/namespaces/default/deployments/web").status_code == 200
    assert admin.get(f"/api/v1/namespaces/default/pods/{pod['metadata']['name']}").json()[
        "status"]["phase"] == "Running"

    # A new credential for the node replaces the old one.
    again = joiner.post("/tinykube/v1/nodecredentials", json={"nodeName": "tkother"})
    assert node.get("/api/v1/namespaces/default/pods").status_code == 401
    assert https(cluster, again.json()["token"]).get(
        "/api/v1/namespaces/default/pods").status_code == 200
    # The join token cannot take over a node another agent runs: its node password (made
    # by the agent under its root) is needed, and the agent's credential stays valid.
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{agent.name}"
    renewed = admin.get(lease_path).json()["spec"]["renewTime"]
    for attempt in ({"nodeName": agent.name}, {"nodeName": agent.name, "nodePassword": "x"}):
        taken = joiner.post("/tinykube/v1/nodecredentials", json=attempt)
        assert taken.status_code == 403
        assert "node password does not match" in taken.json()["message"]
    wait_for(lambda: admin.get(lease_path).json()["spec"]["renewTime"] != renewed,
             timeout=30, what="the agent renewing its Lease with its own credential")
    assert cluster.node_ready(agent.name)
    # Its credential revoked (the Secret deleted), the agent joins again with its password.
    secret = f"/api/v1/namespaces/kube-system/secrets/tinykube-node-{agent.name}"
    revoked = admin.get(secret).json()["metadata"]["uid"]
    assert admin.delete(secret).status_code == 200
    wait_for(lambda: (again := admin.get(secret)).status_code == 200 and again.json()[
        "metadata"]["uid"] != revoked, timeout=30, what="the agent's new credential")
    renewed = admin.get(lease_path).json()["spec"]["renewTime"]
    wait_for(lambda: admin.get(lease_path).json()["spec"]["renewTime"] != renewed,
             timeout=30, what="the agent renewing its Lease after joining again")
    for path in ("/api/v1/namespaces/default/pods/mine", "/api/v1/nodes/tkother"):
        admin.delete(path, params={"gracePeriodSeconds": "0"})
