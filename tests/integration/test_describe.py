"""`tinykube describe` on a real daemon prints kubectl's layout for every kind (the exact
column arithmetic is unit-tested in tests/unit/test_cli_describe.py)."""

from __future__ import annotations

import re

import pytest

from tests.integration.daemon import Daemon, wait_for

pytestmark = pytest.mark.root

POD_SPEC = """
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          command: [sh, -c, "trap 'exit 0' TERM; while :; do sleep 0.1; done"]
          ports: [{containerPort: 8080}]
"""

MANIFEST = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:{POD_SPEC}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  serviceName: db
  replicas: 1
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:{POD_SPEC}
---
apiVersion: v1
kind: ReplicationController
metadata: {{name: legacy}}
spec:
  replicas: 1
  selector: {{app: legacy}}
  template:
    metadata: {{labels: {{app: legacy}}}}
    spec:{POD_SPEC}
"""


def lines(daemon: Daemon, *what: str) -> list[str]:
    return daemon.cli("describe", *what).stdout.splitlines()


def field(described: list[str], name: str) -> str:
    """The value of a top-level `Name:   value` line."""
    found = [line for line in described if re.match(rf"{re.escape(name)}:\s", line)]
    assert len(found) == 1, (name, described)
    return found[0].split(":", 1)[1].strip()


def test_describe_every_kind_in_kubectls_layout(daemon: Daemon) -> None:
    daemon.apply(MANIFEST)
    wait_for(lambda: (daemon.client.get("Deployment", "web").get("status") or {})
             .get("availableReplicas") == 2, what="the deployment available")
    rs = daemon.client.list("ReplicaSet", "default", label_selector="app=web")[0]
    rs_name = rs["metadata"]["name"]
    wait_for(lambda: sum(1 for p in daemon.client.list("Pod", "default")
                         if (p.get("status") or {}).get("phase") == "Running") == 4,
             what="every pod running")

    deploy = lines(daemon, "deploy", "web")
    assert deploy[0] == "Name:                   web", deploy
    assert field(deploy, "Replicas") == \
        "2 desired | 2 updated | 2 total | 2 available | 0 unavailable"
    assert field(deploy, "StrategyType") == "RollingUpdate"
    assert field(deploy, "MinReadySeconds") == "0"
    assert "RollingUpdateStrategy:  25% max unavailable, 25% max surge" in deploy
    template = deploy.index("Pod Template:")
    assert deploy[template + 1:template + 4] == ["  Labels:  app=web", "  Containers:", "   app:"]
    assert "    Port:       8080/TCP" in deploy
    conditions = deploy.index("Conditions:")
    assert deploy[conditions + 1].split() == ["Type", "Status", "Reason"]
    assert "OldReplicaSets:  <none>" in deploy
    assert f"NewReplicaSet:   {rs_name} (2/2 replicas created)" in deploy
    events = deploy.index("Events:")
    assert deploy[events + 1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert any("ScalingReplicaSet" in line and "deployment-controller" in line
               and f"Scaled up replica set {rs_name} to 2" in line
               for line in deploy[events:]), deploy
    assert not any(line.startswith(("Spec:", "Status:", "Kind:")) for line in deploy), deploy

    described_rs = lines(daemon, "rs", rs_name)
    assert field(described_rs, "Controlled By") == "Deployment/web"
    assert field(described_rs, "Replicas") == "2 current / 2 desired"
    assert field(described_rs, "Pods Status") == "2 Running / 0 Waiting / 0 Succeeded / 0 Failed"
    assert any("SuccessfulCreate" in line and "replicaset-controller" in line
               for line in described_rs), described_rs

    rc = lines(daemon, "rc", "legacy")
    assert field(rc, "Selector") == "app=legacy"
    assert field(rc, "Pods Status") == "1 Running / 0 Waiting / 0 Succeeded / 0 Failed"

    sts = lines(daemon, "sts", "db")
    assert field(sts, "Replicas") == "1 desired | 1 total"
    assert field(sts, "Update Strategy") == "RollingUpdate"
    assert field(sts, "Volume Claims") == "<none>"

    pod_name = daemon.client.list("Pod", "default", label_selector="app=web")[0][
        "metadata"]["name"]
    pod = lines(daemon, "pod", pod_name)
    assert field(pod, "Status") == "Running"
    assert field(pod, "Controlled By") == f"ReplicaSet/{rs_name}"
    assert field(pod, "QoS Class") == "BestEffort"
    assert "    State:          Running" in pod and "    Ready:          True" in pod, pod
    assert any(line.split()[:2] == ["Normal", "Started"] and "kubelet" in line
               for line in pod), pod  # kubectl's "From": the component that reported it

    svc = lines(daemon, "svc", "web")
    assert field(svc, "Selector") == "app=web"
    assert field(svc, "Type") == "ClusterIP"
    assert field(svc, "TargetPort") == "8080/TCP"

    namespace = lines(daemon, "ns", "default")
    assert field(namespace, "Status") == "Active"

    node_name = daemon.client.list("Node", None)[0]["metadata"]["name"]
    node = lines(daemon, "node", node_name)
    assert node[0].split() == ["Name:", node_name] and node[1].startswith("Roles:"), node
    assert field(node, "Non-terminated Pods") == "(4 in total)", node
    assert "Allocated resources:" in node and "Lease:" in node and "System Info:" in node

    event = daemon.client.list("Event", "default")[0]
    generic = lines(daemon, "ev", event["metadata"]["name"])
    assert "Involved Object:" in generic and any(
        line.startswith("Reason:") for line in generic), generic


CONFIG = """
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a: "1", b: "two\\nlines"}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
stringData: {password: s3cr3t}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: claim}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Mi}}}
"""


def test_describe_prints_what_the_real_kubectl_prints(tmp_path) -> None:
    """The same objects described by the real kubectl (against this daemon) and by
    `tinykube describe`: the same text, ages aside (the two run a moment apart)."""
    from tests.integration.kube import Kube
    from tinykube.testing.lifecycle import running

    with running(Daemon(tmp_path)) as daemon:
        kube = Kube(daemon, tmp_path)
        daemon.apply(MANIFEST)
        daemon.apply(CONFIG)
        wait_for(lambda: sum(1 for p in daemon.client.list("Pod", "default")
                             if (p.get("status") or {}).get("phase") == "Running") == 4
                 and (daemon.client.get("Deployment", "web").get("status") or {})
                 .get("availableReplicas") == 2, timeout=60, what="everything running")

        def first(kind: str, selector: str | None = None) -> str:
            return daemon.client.list(kind, "default", label_selector=selector)[0][
                "metadata"]["name"]
        targets = [["deploy", "web"], ["rs", first("ReplicaSet", "app=web")],
                   ["pod", first("Pod", "app=web")], ["svc", "web"], ["sts", "db"],
                   ["rc", "legacy"], ["ns", "default"], ["endpointslice", first("EndpointSlice")],
                   ["cm", "cfg"], ["secret", "sec"], ["pvc", "claim"], ["ev", first("Event")],
                   ["controllerrevision", first("ControllerRevision")]]

        def without_ages(text: str) -> list[str]:
            # An age's width moves the columns after it ("9s" then "10s"): the padding
            # after an age, and after the Age heading, is not compared either.
            return [re.sub(r"\bAge +", "Age ",
                           re.sub(r"\b\d+(s|m|h|d)(\d+(s|m|h))?\b *", "AGE ", line))
                    for line in text.splitlines()]
        for target in targets:
            theirs = kube.kubectl("describe", *target).stdout
            ours = daemon.cli("describe", *target).stdout
            assert without_ages(ours) == without_ages(theirs), (target, theirs, ours)
