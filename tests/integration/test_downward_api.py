"""The downward API on a real daemon: env fieldRef / resourceFieldRef values inside the
container, and a downwardAPI volume whose labels/annotations files follow the Pod."""

from __future__ import annotations

import json

import pytest

from tests.integration.daemon import wait_for

pytestmark = pytest.mark.root

FIELDS = {"NAME": "metadata.name", "NS": "metadata.namespace", "UID": "metadata.uid",
          "APP": "metadata.labels['app']", "NOTE": "metadata.annotations['note']",
          "NODE": "spec.nodeName", "SA": "spec.serviceAccountName",
          "IP": "status.podIP", "IPS": "status.podIPs", "HOST_IP": "status.hostIP"}


def manifest(labels: dict, annotations: dict) -> str:
    env = [{"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in FIELDS.items()]
    env += [{"name": "CPU_M", "valueFrom": {"resourceFieldRef": {
                "resource": "limits.cpu", "divisor": "1m"}}},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {
                "resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "GREETING", "value": "hi $(NAME) in $(NS)"}]
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "dw", "labels": labels, "annotations": annotations},
        "spec": {"terminationGracePeriodSeconds": 1, "volumes": [{"name": "info", "downwardAPI": {
            "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                      {"path": "annotations",
                       "fieldRef": {"fieldPath": "metadata.annotations"}},
                      {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
                      {"path": "mem", "resourceFieldRef": {"containerName": "c",
                       "resource": "limits.memory", "divisor": "1Mi"}}]}}],
                 "containers": [{"name": "c", "command": ["sh", "-c", "sleep 3600"],
                                 "args": ["$(NAME)"],
                                 "resources": {"limits": {"cpu": "250m", "memory": "48Mi"}},
                                 "env": env,
                                 "volumeMounts": [{"name": "info",
                                                   "mountPath": "/etc/podinfo"}]}]}})


def sh(daemon, script: str) -> str:
    result = daemon.exec("dw", "sh", "-c", script)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_downward_env_and_volume_follow_the_pod(daemon):
    daemon.apply(manifest({"app": "web"}, {"note": "first"}))
    running = daemon.wait_running("dw")
    env = dict(line.split("=", 1) for line in sh(daemon, "env").splitlines() if "=" in line)
    status, meta = running["status"], running["metadata"]
    assert (env["NAME"], env["NS"], env["UID"]) == ("dw", "default", meta["uid"])
    assert (env["APP"], env["NOTE"], env["SA"]) == ("web", "first", "default")
    assert env["IP"] == env["IPS"] == status["podIP"] and env["HOST_IP"] == status["hostIP"]
    assert env["NODE"] and (env["CPU_M"], env["MEM_MI"]) == ("250", "48")
    assert env["GREETING"] == "hi dw in default"

    assert sh(daemon, "cat /etc/podinfo/labels") == 'app="web"'
    assert sh(daemon, "cat /etc/podinfo/app /etc/podinfo/mem") == "web48"
    annotations = sh(daemon, "cat /etc/podinfo/annotations")
    assert 'note="first"' in annotations

    # The Pod's labels and annotations change: the files follow, in place (the kubelet's
    # atomic writer), while the container keeps running.
    daemon.apply(manifest({"app": "web", "tier": "front"}, {"note": "second"}))
    wait_for(lambda: sh(daemon, "cat /etc/podinfo/labels") == 'app="web"\ntier="front"',
             timeout=30, what="labels file updated")
    wait_for(lambda: 'note="second"' in sh(daemon, "cat /etc/podinfo/annotations"),
             timeout=30, what="annotations file updated")
    assert daemon.pod("dw")["status"]["containerStatuses"][0]["restartCount"] == 0
