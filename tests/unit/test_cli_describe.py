"""`describe` prints kubectl's layout (kubectl/pkg/describe/describe.go), column for column."""

from __future__ import annotations

import copy
import os
import time

import pytest

from tinykube.cli.describe import TabWriter, describe, smart_label


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    # kubectl prints times in local time; pin the zone so the expected text is fixed
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


class Related:
    def __init__(self, objects=(), events=()):
        self.objects, self._events = list(objects), list(events)

    def events(self, obj):
        return self._events

    def list(self, kind, namespace, selector=None):
        return [o for o in self.objects if o["kind"] == kind]


TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx", "command": ["sleep", "9"],
                                     "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}

DEPLOYMENT = {
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "uid": "d1",
                 "creationTimestamp": "2026-12-07T01:00:00Z", "labels": {"app": "web"},
                 "annotations": {"deployment.kubernetes.io/revision": "2",
                                 "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
             "strategy": {"type": "RollingUpdate",
                          "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
             "template": TEMPLATE},
    "status": {"replicas": 4, "updatedReplicas": 1, "availableReplicas": 3,
               "unavailableReplicas": 1,
               "conditions": [{"type": "Available", "status": "True",
                               "reason": "MinimumReplicasAvailable"},
                              {"type": "Progressing", "status": "True",
                               "reason": "ReplicaSetUpdated"}]},
}


def _rs(name: str, template: dict, replicas: int) -> dict:
    template = copy.deepcopy(template)
    template["metadata"]["labels"]["pod-template-hash"] = name.rsplit("-", 1)[1]
    return {"kind": "ReplicaSet",
            "metadata": {"name": name, "uid": name, "creationTimestamp": "2026-12-07T01:00:00Z",
                         "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": "d1",
                                              "controller": True}]},
            "spec": {"replicas": replicas, "template": template},
            "status": {"replicas": replicas}}


def test_deployment_in_kubectl_layout():
    old_template = copy.deepcopy(TEMPLATE)
    old_template["spec"]["containers"][0]["image"] = "nginx:old"
    related = Related([_rs("web-new", TEMPLATE, 1), _rs("web-old", old_template, 3)])
    assert describe(DEPLOYMENT, related) == """\
Name:                   web
Namespace:              default
CreationTimestamp:      Mon, 07 Dec 2026 01:00:00 +0000
Labels:                 app=web
Annotations:            deployment.kubernetes.io/revision: 2
Selector:               app=web
Replicas:               3 desired | 1 updated | 4 total | 3 available | 1 unavailable
StrategyType:           RollingUpdate
MinReadySeconds:        0
RollingUpdateStrategy:  25% max unavailable, 1 max surge
Pod Template:
  Labels:  app=web
  Containers:
   web:
    Image:      nginx
    Port:       80/TCP
    Host Port:  0/TCP
    Command:
      sleep
      9
    Environment:   <none>
    Mounts:        <none>
  Volumes:         <none>
  Node-Selectors:  <none>
  Tolerations:     <none>
Conditions:
  Type           Status  Reason
  ----           ------  ------
  Available      True    MinimumReplicasAvailable
  Progressing    True    ReplicaSetUpdated
OldReplicaSets:  web-old (3/3 replicas created)
NewReplicaSet:   web-new (1/1 replicas created)
Events:          <none>
"""


def test_events_table_is_aligned_on_its_own():
    event = {"type": "Normal", "reason": "ScalingReplicaSet", "count": 3,
             "firstTimestamp": "2026-12-07T01:00:00Z", "lastTimestamp": "2026-12-07T01:00:00Z",
             "source": {"component": "deployment-controller"},
             "message": "Scaled up replica set web-new to 1"}
    text = describe(DEPLOYMENT, Related([], [event]))
    table = text.split("Events:\n", 1)[1].splitlines()
    assert table[0] == "  Type    Reason             Age" + table[0][len("  Type    Reason             Age"):]
    assert table[1].startswith("  ----    ------             ----")
    assert "(x3 over " in table[2] and table[2].endswith(
        "deployment-controller  Scaled up replica set web-new to 1")
    assert "OldReplicaSets" not in text  # no ReplicaSets: kubectl leaves both lines out


def test_replicaset_counts_only_its_own_pods():
    rs = _rs("web-abc", TEMPLATE, 2)
    rs["metadata"].update(namespace="default", labels={"app": "web"})
    rs["spec"]["selector"] = {"matchLabels": {"app": "web"}}

    def pod(name, phase, owner="web-abc"):
        refs = [{"kind": "ReplicaSet", "name": owner, "uid": owner, "controller": True}]
        return {"kind": "Pod", "metadata": {"name": name, "ownerReferences": refs},
                "status": {"phase": phase}}
    related = Related([pod("a", "Running"), pod("b", "Pending"), pod("c", "Running", "other")])
    lines = describe(rs, related).splitlines()
    assert lines[:9] == [
        "Name:           web-abc",
        "Namespace:      default",
        "Selector:       app=web",
        "Labels:         app=web",
        "Annotations:    <none>",
        "Controlled By:  Deployment/web",
        "Replicas:       2 current / 2 desired",
        "Pods Status:    1 Running / 1 Waiting / 0 Succeeded / 0 Failed",
        "Pod Template:",
    ]
    assert lines[9:11] == ["  Labels:  app=web", "           pod-template-hash=abc"]


def test_pod_lists_containers_state_conditions_and_volumes():
    pod = {
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"app": "x"}},
        "spec": {"nodeName": "tinykube",
                 "containers": [{"name": "c", "image": "", "command": ["sh"],
                                 "env": [{"name": "A", "value": "1"},
                                         {"name": "POD", "valueFrom": {"fieldRef": {
                                             "fieldPath": "metadata.name"}}}],
                                 "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                                 "resources": {"limits": {"cpu": "1", "memory": "64Mi"}},
                                 "readinessProbe": {"tcpSocket": {"port": 80},
                                                    "periodSeconds": 2}}],
                 "volumes": [{"name": "data", "emptyDir": {}}]},
        "status": {"phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.0.0.5",
                   "podIPs": [{"ip": "10.0.0.5"}], "startTime": "2026-12-07T01:00:00Z",
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": "c", "containerID": "tinykube://42",
                                          "imageID": "", "ready": True, "restartCount": 1,
                                          "state": {"running": {
                                              "startedAt": "2026-12-07T01:00:01Z"}}}]},
    }
    # Go's tabwriter pads empty last cells too; kubectl's trailing blanks are not the point
    shown = "\n".join(line.rstrip() for line in describe(pod, Related()).splitlines())
    assert shown + "\n" == """\
Name:         p
Namespace:    default
Node:         tinykube/10.0.0.1
Start Time:   Mon, 07 Dec 2026 01:00:00 +0000
Labels:       app=x
Annotations:  <none>
Status:       Running
IP:           10.0.0.5
IPs:
  IP:  10.0.0.5
Containers:
  c:
    Container ID:  tinykube://42
    Image:
    Image ID:
    Port:          <none>
    Host Port:     <none>
    Command:
      sh
    State:          Running
      Started:      Mon, 07 Dec 2026 01:00:01 +0000
    Ready:          True
    Restart Count:  1
    Limits:
      cpu:      1
      memory:   64Mi
    Readiness:  tcp-socket :80 delay=0s timeout=1s period=2s #success=1 #failure=3
    Environment:
      A:    1
      POD:  p (v1:metadata.name)
    Mounts:
      /data from data (rw)
Conditions:
  Type    Status
  Ready   True
Volumes:
  data:
    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)
    Medium:
    SizeLimit:   <unset>
QoS Class:       Guaranteed
Node-Selectors:  <none>
Tolerations:     <none>
Events:          <none>
"""


def test_service_and_endpoint_slice():
    service = {"kind": "Service",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10",
                        "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"],
                        "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}
    slice_ = {"kind": "EndpointSlice", "addressType": "IPv4",
              "metadata": {"name": "web-x", "namespace": "default",
                           "labels": {"kubernetes.io/service-name": "web"}},
              "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
              "endpoints": [{"addresses": [f"10.0.0.{i}"], "conditions": {"ready": i != 2},
                             "targetRef": {"kind": "Pod", "name": f"p{i}"}}
                            for i in range(1, 6)]}
    lines = describe(service, Related([slice_])).splitlines()
    assert "Port:                     <unset>  80/TCP" in lines
    assert "TargetPort:               8080/TCP" in lines
    assert "Endpoints:                10.0.0.1:8080,10.0.0.3:8080,10.0.0.4:8080 + 1 more..." \
        in lines
    text = describe(slice_, Related())
    assert "AddressType:  IPv4\nPorts:\n  Name     Port  Protocol\n  ----     ----  --------\n" \
           "  <unset>  8080  TCP\nEndpoints:\n  - Addresses:  10.0.0.1\n    Conditions:\n" \
           "      Ready:    true\n    Hostname:   <unset>\n    TargetRef:  Pod/p1\n" in text


def test_kinds_without_a_describer_get_kubectls_generic_one():
    event = {"kind": "Event", "apiVersion": "v1",
             "metadata": {"name": "e", "namespace": "default", "uid": "u"},
             "involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Started"}
    assert describe(event, Related()) == """\
Name:         e
Namespace:    default
Labels:       <none>
Annotations:  <none>
API Version:  v1
Involved Object:
  Kind:  Pod
  Name:  p
Kind:    Event
Metadata:
  UID:   u
Reason:  Started
Events:  <none>
"""


@pytest.mark.parametrize("field,label", [
    ("apiVersion", "API Version"), ("involvedObject", "Involved Object"), ("uid", "UID"),
    ("podIP", "Pod IP"), ("HTTPServer", "HTTPServer"), ("first_seen", "first_seen"),
])
def test_smart_labels(field, label):
    assert smart_label(field) == label


def test_tab_writer_aligns_runs_of_lines_with_the_column():
    w = TabWriter()
    w.write(0, "a:\t1\nlonger:\t2\nbreak\nb:\t3\n")
    assert w.text() == "a:       1\nlonger:  2\nbreak\nb:  3\n"
    assert os.environ["TZ"] == "UTC"


@pytest.mark.parametrize("seconds,shown", [
    (-5, "<invalid>"), (-0.5, "0s"), (5, "5s"), (119, "119s"), (192, "3m12s"), (600, "10m"),
    (179 * 60, "179m"), (3 * 3600 + 15 * 60, "3h15m"), (5 * 3600, "5h"), (20 * 3600, "20h"),
    (54 * 3600, "2d6h"), (72 * 3600, "3d"), (45 * 86400, "45d"), (760 * 86400, "2y30d"),
    (3000 * 86400, "8y"),
])
def test_ages_are_kubectls_human_durations(seconds, shown):
    from tinykube.cli.printing import human_duration

    assert human_duration(seconds) == shown


def test_node_with_its_lease_pods_and_allocated_resources():
    node = {"kind": "Node", "metadata": {"name": "n1", "uid": "n-uid",
                                         "creationTimestamp": "2026-12-07T01:00:00Z",
                                         "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"podCIDR": "10.88.0.0/24", "podCIDRs": ["10.88.0.0/24"]},
            "status": {"capacity": {"cpu": "2", "memory": "2Gi", "pods": "110"},
                       "allocatable": {"cpu": "2", "memory": "2Gi", "pods": "110"},
                       "addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                                     {"type": "Hostname", "address": "n1"}],
                       "conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady", "message": "ok",
                                       "lastHeartbeatTime": "2026-12-07T01:00:00Z",
                                       "lastTransitionTime": "2026-12-07T01:00:00Z"}],
                       "nodeInfo": {"kubeletVersion": "v1.31.0-tinykube"}}}
    lease = {"kind": "Lease", "metadata": {"name": "n1", "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": "n1", "renewTime": "2026-12-07T01:00:05.000000Z"}}

    def pod(name, node_name, phase="Running", limits=None):
        return {"kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": node_name,
                         "containers": [{"name": "c", "resources": {"limits": limits or {}}}]},
                "status": {"phase": phase}}
    related = Related([lease, pod("a", "n1", limits={"cpu": "500m", "memory": "256Mi"}),
                       pod("b", "n1"), pod("done", "n1", phase="Succeeded"),
                       pod("elsewhere", "n2")])
    lines = [line.rstrip() for line in describe(node, related).splitlines()]
    assert lines[:2] == ["Name:               n1", "Roles:              control-plane"]
    assert "Taints:             <none>" in lines and "Unschedulable:      false" in lines
    assert lines[lines.index("Lease:") + 1:lines.index("Lease:") + 4] == [
        "  HolderIdentity:  n1", "  AcquireTime:     <unset>",
        "  RenewTime:       Mon, 07 Dec 2026 01:00:05 +0000"]
    assert "  InternalIP:  10.0.0.1" in lines
    assert "Non-terminated Pods:          (2 in total)" in lines
    row = next(line for line in lines if line.split()[:2] == ["default", "a"])
    assert row.split()[2:10] == ["500m", "(25%)", "500m", "(25%)", "256Mi", "(12%)", "256Mi",
                                 "(12%)"]
    assert "  cpu                500m (25%)   500m (25%)" in lines
    assert lines[-1] == "Events:              <none>"
