"""The scheduler's pure decision (tinykube/cluster/placement.py) and the binding rule
(tinykube/api/binding.py), on plain objects."""

import pytest

from tinykube.api.binding import bound
from tinykube.cluster import placement
from tinykube.model.errors import Conflict, Invalid


def node(name, cpu="2", memory="4Gi", pods="110", ready="True", labels=None, **spec):
    return {"kind": "Node", "metadata": {"name": name, "labels": labels or {}}, "spec": spec,
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                       "conditions": [{"type": "Ready", "status": ready}]}}


def pod(name, owner=None, cpu=None, memory=None, node_name=None, selector=None, claim=None,
        phase=None):
    resources = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    spec = {"containers": [{"name": "c", "resources": {"requests": resources}}]}
    if node_name:
        spec["nodeName"] = node_name
    if selector:
        spec["nodeSelector"] = selector
    if claim:
        spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    meta = {"name": name, "namespace": "default"}
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner, "uid": owner,
                                    "controller": True}]
    return {"kind": "Pod", "metadata": meta, "spec": spec, "status": {"phase": phase or ""}}


NODES = [node("a"), node("b"), node("c")]


def place_all(pods, nodes=NODES, claims=None):
    placed = []
    loads = placement.loads(placed)
    for p in pods:
        decision = placement.choose(p, nodes, loads, claims)
        assert decision.node is not None, decision.message(len(nodes))
        p["spec"]["nodeName"] = decision.node
        loads.setdefault(decision.node, placement.NodeLoad()).add(p)
        placed.append(p)
    return placed


def test_six_replicas_spread_two_per_node():
    placed = place_all([pod(f"web-{i}", owner="rs1") for i in range(6)])
    per_node = {n: sum(p["spec"]["nodeName"] == n for p in placed) for n in "abc"}
    assert per_node == {"a": 2, "b": 2, "c": 2}


def test_replicas_spread_even_when_other_pods_crowd_a_node():
    others = [pod(f"x{i}", owner="other", node_name="a") for i in range(4)]
    loads = placement.loads(others)
    first = placement.choose(pod("web-0", owner="rs1"), NODES, loads)
    assert first.node == "b"  # fewest pods breaks the tie among nodes with no sibling


def test_node_selector_and_readiness_and_unschedulable_filter():
    nodes = [node("a", labels={"disk": "ssd"}), node("b", ready="False"),
             node("c", labels={"disk": "ssd"}, unschedulable=True), node("d")]
    decision = placement.choose(pod("p", selector={"disk": "ssd"}), nodes, {})
    assert decision.node == "a"
    nothing = placement.choose(pod("p", selector={"disk": "nvme"}), nodes, {})
    assert nothing.node is None
    assert nothing.message(4) == (
        "0/4 nodes are available: 1 node(s) were not ready, 1 node(s) were unschedulable, "
        "2 node(s) didn't match Pod's node affinity/selector.")


def test_requests_must_fit_the_allocatable_left():
    nodes = [node("a", cpu="1", memory="1Gi"), node("b", cpu="4", memory="512Mi")]
    loads = placement.loads([pod("big", cpu="800m", node_name="a")])
    assert placement.choose(pod("p", cpu="300m"), nodes, loads).node == "b"
    decision = placement.choose(pod("p", cpu="300m", memory="600Mi"), nodes, loads)
    assert decision.node is None
    assert decision.message(2) == ("0/2 nodes are available: 1 Insufficient cpu, "
                                   "1 Insufficient memory.")


def test_limits_count_as_requests_and_terminal_pods_free_their_node():
    p = pod("p")
    p["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1500m", "memory": "1Gi"}}
    assert placement.pod_requests(p) == (1500, 1024**3)
    done = pod("done", cpu="2", node_name="a", phase="Succeeded")
    assert placement.choose(pod("q", cpu="2"), [node("a")],
                            placement.loads([done])).node == "a"


def test_pod_count_limit():
    loads = placement.loads([pod("x", node_name="a")])
    decision = placement.choose(pod("p"), [node("a", pods="1")], loads)
    assert decision.node is None and "Too many pods" in decision.message(1)


def test_a_claim_bound_to_a_node_pins_its_pod_there():
    claims = {("default", "data-web-1"): {"metadata": {"name": "data-web-1", "annotations": {
        placement.SELECTED_NODE: "b"}}}}
    decision = placement.choose(pod("web-1", owner="sts", claim="data-web-1"), NODES, {},
                                claims)
    assert decision.node == "b"
    down = [node("a"), node("b", ready="False"), node("c")]
    waiting = placement.choose(pod("web-1", owner="sts", claim="data-web-1"), down, {}, claims)
    assert waiting.node is None  # Pending while its node is down, never elsewhere
    assert "volume node affinity conflict" in waiting.message(3)


def test_binding_sets_node_name_once():
    p = pod("p")
    p["metadata"]["uid"] = "u1"
    new = bound(p, {"kind": "Binding", "metadata": {"name": "p"},
                    "target": {"kind": "Node", "name": "a"}})
    assert new["spec"]["nodeName"] == "a" and "nodeName" not in p["spec"]
    assert {"type": "PodScheduled", "status": "True"}.items() <= \
        new["status"]["conditions"][-1].items()
    with pytest.raises(Conflict, match='already assigned to node "a"'):
        bound(new, {"target": {"kind": "Node", "name": "b"}})
    deleting = pod("d")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    with pytest.raises(Conflict, match="being deleted"):
        bound(deleting, {"target": {"name": "b"}})


@pytest.mark.parametrize("body, field", [
    ({}, "target"),
    ({"target": {"kind": "Node"}}, "target.name"),
    ({"target": {"kind": "Pod", "name": "a"}}, "target.kind"),
    ({"target": {"name": "Bad_Name"}}, "target.name"),
])
def test_binding_refuses_a_bad_target(body, field):
    with pytest.raises(Invalid) as caught:
        bound(pod("p"), body)
    assert [e.path for e in caught.value.errors] == [field]


def test_host_gw_routes_go_to_other_nodes_slices_by_their_address():
    from tinykube.cluster.routes import wanted_routes

    def n(name, cidr, ip):
        return {"metadata": {"name": name}, "spec": {"podCIDR": cidr} if cidr else {},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}] if ip else []}}
    nodes = [n("a", "10.1.1.0/24", "192.0.2.1"), n("b", "10.1.2.0/24", "192.0.2.2"),
             n("c", "10.1.3.0/24", "192.0.2.3"), n("d", None, "192.0.2.4"),
             n("e", "10.1.5.0/24", None), n("f", "bad", "192.0.2.6")]
    assert wanted_routes(nodes, "a", {"192.0.2.1", "192.0.2.3"}) == {
        "10.1.2.0/24": "192.0.2.2"}  # not itself, not a local address, not without either


def test_node_ipam_hands_out_the_next_free_slice():
    from tinykube.controllers.nodeipam import NodeIpam, next_free

    assert next_free("10.9.0.0/16", 24, set()) == "10.9.0.0/24"
    assert next_free("10.9.0.0/16", 24, {"10.9.0.0/24", "10.9.2.0/24"}) == "10.9.1.0/24"
    assert next_free("10.9.0.0/23", 24, {"10.9.0.0/24", "10.9.1.0/24"}) is None
    with pytest.raises(ValueError, match="does not fit"):
        NodeIpam(None, "10.9.0.0/24", 16)
