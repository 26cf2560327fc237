"""The workloads the benchmark runs: the smallest honest pod (one sleeping process) and its
two-container + emptyDir variant, and controllers around that template.

The app is `catatonit -P` (a pause that exits on SIGTERM even as PID 1 of its container,
where `sleep`, having no handler, ignores SIGTERM as under Kubernetes), and
terminationGracePeriodSeconds is 2, so scale-downs and deletions measure tinykube's teardown
rather than an app's shutdown. (Until the pod isolation of issue 15 the app was `sleep
infinity`, which exited on SIGTERM when it was not PID 1.)
"""

from __future__ import annotations

from typing import Any

NAMESPACE = "default"
APP = ["catatonit", "-P"]


def pod_spec(containers: int = 1, empty_dir: bool = False,
             readiness_probe: dict[str, Any] | None = None, env: str = "1") -> dict[str, Any]:
    spec: dict[str, Any] = {"terminationGracePeriodSeconds": 2, "containers": []}
    for i in range(containers):
        container: dict[str, Any] = {"name": f"app{i}" if containers > 1 else "app",
                                     "command": APP, "env": [{"name": "ROUND", "value": env}]}
        if empty_dir:
            container["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
        if readiness_probe:
            container["readinessProbe"] = readiness_probe
        spec["containers"].append(container)
    if empty_dir:
        spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    return spec


def pod(name: str, labels: dict[str, str], **shape: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": pod_spec(**shape)}


def replica_set(name: str, replicas: int, **shape: Any) -> dict[str, Any]:
    labels = {"bench": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec(**shape)}}}


def deployment(name: str, replicas: int, **shape: Any) -> dict[str, Any]:
    labels = {"bench": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec(**shape)}}}
