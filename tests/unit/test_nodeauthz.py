"""The node authorizer's rules (tinykube/api/nodeauthz.py): what a node credential may do."""

from __future__ import annotations

import pytest

from tinykube.api.nodeauthz import Target, refusal
from tinykube.model.kinds import by_kind


def target(kind: str, namespace: str | None = "default", name: str | None = None,
           sub: str | None = None) -> Target:
    return Target(by_kind(kind), namespace, name, sub)


MINE = {"spec": {"nodeName": "n1"}}
THEIRS = {"spec": {"nodeName": "n2"}}


@pytest.mark.parametrize("method, where, body_name, pod", [
    ("GET", target("Pod"), None, None),
    ("GET", target("Node", None, "n2"), None, None),
    ("GET", None, None, None),  # discovery, /version
    ("POST", target("Event"), None, None),
    ("POST", target("Node", None), "n1", None),
    ("PUT", target("Node", None, "n1", "status"), None, None),
    ("POST", target("Lease", "kube-node-lease"), "n1", None),
    ("PUT", target("Lease", "kube-node-lease", "n1"), None, None),
    ("PUT", target("Pod", "default", "p", "status"), None, MINE),
    ("PATCH", target("Pod", "default", "p", "status"), None, MINE),
    ("DELETE", target("Pod", "default", "p"), None, MINE),
])
def test_what_a_node_may_do(method, where, body_name, pod):
    assert refusal("n1", method, where, body_name, pod) is None


@pytest.mark.parametrize("method, where, body_name, pod, why", [
    ("GET", target("Secret", "kube-system"), None, None, "may not read secrets"),
    ("GET", target("Pod", "default", "p", "log"), None, MINE, "may not read pods' logs"),
    ("DELETE", target("Deployment", "default", "web"), None, None, "may not change it"),
    ("POST", target("Node", None), "n2", None, "only create and update its own Node"),
    ("PUT", target("Node", None, "n2", "status"), None, None, "its own Node"),
    ("DELETE", target("Node", None, "n1"), None, None, "its own Node"),
    ("PUT", target("Lease", "kube-node-lease", "n2"), None, None, "its own Lease"),
    ("PUT", target("Lease", "kube-system", "tinykube-controller-manager"), None, None,
     "may not change it"),
    ("PUT", target("Pod", "default", "p", "status"), None, THEIRS, "bound to node 'n2'"),
    ("PUT", target("Pod", "default", "p"), None, MINE, "only update the status"),
    ("POST", target("Pod", "default", "p", "exec"), None, MINE, "only update the status"),
    ("POST", target("Pod"), None, None, "may not change it"),
    ("POST", None, None, None, "only reads"),
])
def test_what_a_node_may_not_do(method, where, body_name, pod, why):
    message = refusal("n1", method, where, body_name, pod)
    assert message is not None and why in message and 'User "system:node:n1"' in message
