"""The Node and Lease a node publishes (tinykube/cluster/nodeobjects.py) validate as the API
server checks them, and carry what `kubectl get nodes` and the scheduler read."""

import re

from tinykube.cli import printing
from tinykube.cluster import nodeobjects
from tinykube.model import schema, validation

FACTS = nodeobjects.NodeFacts("node-a", address="10.0.0.5", pod_cidr="10.88.1.0/24",
                              cpu_millis=2000, memory_bytes=4 * 1024**3,
                              labels={nodeobjects.CONTROL_PLANE_ROLE: ""})


def test_node_object_is_valid_and_reads_like_kubectl_get_nodes():
    node = nodeobjects.node_object(FACTS)
    assert validation.validate(node) == []
    assert validation.validate_status("Node", node["status"]) == []
    assert node["spec"] == {"podCIDR": "10.88.1.0/24", "podCIDRs": ["10.88.1.0/24"]}
    assert node["status"]["capacity"] == {"cpu": "2", "memory": "4194304Ki", "pods": "110"}
    node["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    table = printing.render_table([node], wide=True)
    assert re.match(r"NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION\s+INTERNAL-IP\s+POD-CIDR\n"
                    r"node-a\s+Ready\s+control-plane\s+\S+\s+v1\.\S+\s+10\.0\.0\.5\s+"
                    r"10\.88\.1\.0/24$", table), table


def test_lease_is_owned_by_its_node_and_uses_micro_time():
    node = nodeobjects.node_object(FACTS)
    node["metadata"]["uid"] = "uid-1"
    lease = nodeobjects.lease_object(node, seconds=40)
    assert validation.validate(lease) == []
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", lease["spec"]["renewTime"])


def test_bad_node_fields_are_refused_by_name():
    node = nodeobjects.node_object(FACTS)
    node["spec"]["podCIDR"] = "10.88.1.0/33"
    (error,) = validation.validate(node)
    assert error.path == "spec.podCIDR" and "IPv4 CIDR" in error.message
    report = schema.check_status("Node", {"capacity": {"cpu": "lots"}})
    assert [e.path for e in report.structural + report.values] == ["status.capacity[cpu]"]


def test_pod_node_name_and_selector_are_validated():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"nodeName": "Not_A_Node", "nodeSelector": {"disk": "ssd!"},
                    "containers": [{"name": "c", "command": ["true"]}]}}
    paths = sorted(e.path for e in validation.validate(pod))
    assert paths == ["spec.nodeName", "spec.nodeSelector"]
