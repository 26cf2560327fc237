"""The all-in-one daemon's own Node and Lease, `get nodes`, spec.nodeName and the
pods/binding subresource on a real daemon with real pods."""

import re

import pytest

from tinykube.model.errors import Conflict, Invalid

pytestmark = pytest.mark.root

POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 0
  {extra}
  containers:
  - name: main
    command: [sh, -c, 'trap "exit 0" TERM; while :; do sleep 0.1; done']
"""


def own_node(daemon) -> dict:
    # Registered (Node and Lease) before the daemon's API answers: no waiting.
    (node,) = daemon.get_json("nodes")["items"]
    return node


def test_the_daemon_registers_its_node_and_heartbeats_its_lease(daemon):
    node = own_node(daemon)
    name = node["metadata"]["name"]
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == name
    assert node["spec"]["podCIDR"] == daemon.cidr
    capacity = node["status"]["capacity"]
    assert int(capacity["cpu"]) >= 1 and capacity["pods"] == "110"
    assert capacity["memory"].endswith("Ki")
    (ready,) = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready["status"] == "True"
    table = daemon.cli("get", "nodes").stdout
    assert re.match(rf"NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION\n{re.escape(name)}\s+Ready\s+"
                    r"control-plane\s+\S+\s+v1\.", table), table
    lease = daemon.client.get("Lease", name, "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == name
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]


def test_node_name_is_honoured_and_binding_sets_it_once(daemon):
    node = own_node(daemon)["metadata"]["name"]
    daemon.apply(POD.format(name="elsewhere", extra="nodeName: some-other-node"))
    try:
        check_node_name_and_binding(daemon, node)
    finally:  # no kubelet will ever finish a graceful deletion of it: force it, as kubectl
        daemon.client.delete("Pod", "elsewhere", "default", grace_period=0)


def check_node_name_and_binding(daemon, node):
    daemon.apply(POD.format(name="here", extra=f"nodeName: {node}"))
    daemon.apply(POD.format(name="unbound", extra=""))
    daemon.wait_running("here")
    daemon.wait_running("unbound")  # the all-in-one node runs what no scheduler bound
    wide = daemon.cli("get", "pods", "-o", "wide").stdout
    assert re.search(rf"^here\s+1/1\s+Running\s+0\s+\S+\s+[\d.]+\s+{re.escape(node)}$", wide,
                     re.MULTILINE), wide
    # Started after "elsewhere" was stored and seen: a pod for another node is never run here.
    other = daemon.pod("elsewhere")
    assert (other.get("status") or {}).get("phase", "Pending") == "Pending"
    assert not (other.get("status") or {}).get("podIP")

    path = "/api/v1/namespaces/default/pods/{}/binding"
    body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "unbound"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
    daemon.client.request("POST", path.format("unbound"), body=body)
    assert daemon.pod("unbound")["spec"]["nodeName"] == node
    with pytest.raises(Conflict, match=f'already assigned to node "{node}"'):
        daemon.client.request("POST", path.format("unbound"), body=body)
    bad = {**body, "target": {"kind": "Node", "name": "No_Such!"}}
    with pytest.raises(Invalid, match="target.name"):
        daemon.client.request("POST", path.format("elsewhere"), body=bad)
    assert daemon.pod("elsewhere")["spec"]["nodeName"] == "some-other-node"  # unchanged


def test_bad_node_name_and_selector_are_refused(daemon):
    refused = daemon.cli("apply", "-f", "-", check=False,
                         input=POD.format(name="bad", extra="nodeName: Bad_Node"))
    assert refused.returncode == 1 and "spec.nodeName" in refused.stderr
    assert "bad" not in daemon.cli("get", "pods", "-o", "name").stdout
