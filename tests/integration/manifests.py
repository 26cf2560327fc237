"""Manifests the daemon tests share, built by functions so that a test states only what
differs (name, replicas, the command) instead of carrying its own copy of the YAML."""

from __future__ import annotations

SLEEP = "[sleep, infinity]"


def workload(kind: str, name: str, *, replicas: int = 0, command: str = SLEEP,
             grace: int | None = None, object_labels: bool = False,
             selector: bool = True) -> str:
    """A Deployment, ReplicaSet or ReplicationController of one container `c` labelled
    app=<name>. `selector=False` leaves an RC's selector to its default (the template's
    labels)."""
    api_version = "v1" if kind == "ReplicationController" else "apps/v1"
    meta = f"{{name: {name}, labels: {{app: {name}}}}}" if object_labels else f"{{name: {name}}}"
    select = ""
    if selector:
        select = (f"  selector: {{app: {name}}}\n" if kind == "ReplicationController"
                  else f"  selector: {{matchLabels: {{app: {name}}}}}\n")
    grace_line = f"      terminationGracePeriodSeconds: {grace}\n" if grace is not None else ""
    return (f"\napiVersion: {api_version}\nkind: {kind}\nmetadata: {meta}\nspec:\n"
            f"  replicas: {replicas}\n{select}  template:\n"
            f"    metadata: {{labels: {{app: {name}}}}}\n    spec:\n{grace_line}"
            f"      containers: [{{name: c, command: {command}}}]\n")


def stateful_set(name: str, script: str, *, replicas: int = 1) -> str:
    """A StatefulSet whose pods run `sh -c <script>` with a 1Mi claim `data` at /data."""
    return f"""
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  serviceName: {name}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: c
          command: [sh, -c, "{script}"]
          volumeMounts: [{{name: data, mountPath: /data}}]
  volumeClaimTemplates:
    - metadata: {{name: data}}
      spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Mi}}}}}}
"""


def documents(*manifests: str) -> str:
    return "---".join(manifests)
