"""Defaulting, as Kubernetes' `SetDefaults_*` functions do it, in place.

The API server applies these to user input before storing it, so controllers and the
runtime can read `spec.replicas`, probe periods, the rollout strategy and so on without
re-implementing defaults. Safe on malformed input (it only fills fields whose parent has
the right type; validation reports the rest), and idempotent.
"""

from __future__ import annotations

import base64
from typing import Any

POD_DEFAULTS = {"restartPolicy": "Always", "terminationGracePeriodSeconds": 30}
PROBE_FIELDS = ("livenessProbe", "readinessProbe", "startupProbe")
PROBE_DEFAULTS = {"initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 1,
                  "successThreshold": 1, "failureThreshold": 3}
HTTP_GET_DEFAULTS = {"path": "/", "scheme": "HTTP"}


def _fill(target: Any, defaults: dict[str, Any]) -> None:
    if isinstance(target, dict):
        for key, value in defaults.items():
            if target.get(key) is None:
                target[key] = value


def _child(parent: Any, key: str, create: bool = True) -> Any:
    """`parent[key]`, created as {} when missing (and `create`); None if not a dict."""
    if not isinstance(parent, dict):
        return None
    if parent.get(key) is None and create:
        parent[key] = {}
    value = parent.get(key)
    return value if isinstance(value, dict) else None


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def apply_defaults(obj: Any) -> Any:
    """Fill in Kubernetes' defaults for `obj` (in place) and return it."""
    if not isinstance(obj, dict):
        return obj
    meta = _child(obj, "metadata")
    if meta is not None and not meta.get("namespace"):
        meta["namespace"] = "default"
    kind = obj.get("kind")
    if kind == "Secret":
        _default_secret(obj)
    handler = _BY_KIND.get(kind) if isinstance(kind, str) else None
    spec = _child(obj, "spec", create=handler is not None)
    if handler is not None and spec is not None:
        handler(spec)
    if kind == "ReplicationController" and meta is not None and not meta.get("labels"):
        # v1 RCs take their template's labels when they have none
        # (SetDefaults_ReplicationController).
        template_meta = _child(_child(spec, "template", False), "metadata", False)
        labels = template_meta.get("labels") if isinstance(template_meta, dict) else None
        if isinstance(labels, dict) and labels:
            meta["labels"] = dict(labels)
    return obj


def default_pod_spec(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    _fill(spec, POD_DEFAULTS)
    for volume in _items(spec.get("volumes")):
        # A volume with no source is an emptyDir (SetDefaults_Volume).
        # Only a bare {name} qualifies: an unsupported source must stay visible to validation.
        if isinstance(volume, dict) and set(volume) <= {"name"}:
            volume["emptyDir"] = {}
        if isinstance(volume, dict):
            _default_file_volume(volume)
    for container in _items(spec.get("containers")) + _items(spec.get("initContainers")):
        if not isinstance(container, dict):
            continue
        for probe_name in PROBE_FIELDS:
            default_probe(container.get(probe_name))
        for var in _items(container.get("env")):
            value_from = _child(var, "valueFrom", False)
            _fill(_child(value_from, "fieldRef", False), {"apiVersion": "v1"})
        for port in _items(container.get("ports")):
            _fill(port, {"protocol": "TCP"})
            if spec.get("hostNetwork") is True and isinstance(port, dict):
                # On the host's network a container port is a host port (SetDefaults_PodSpec).
                _fill(port, {"hostPort": port.get("containerPort")})



DEFAULT_FILE_MODE = 0o644  # Kubernetes' defaultMode of configMap/secret/downwardAPI volumes


def _default_file_volume(volume: dict[str, Any]) -> None:
    """SetDefaults_{ConfigMap,Secret,DownwardAPI,Projected}VolumeSource: defaultMode 0644,
    fieldRef apiVersion v1."""
    for source in ("configMap", "secret", "downwardAPI", "projected"):
        _fill(_child(volume, source, False), {"defaultMode": DEFAULT_FILE_MODE})
    downward = [_child(volume, "downwardAPI", False)]
    downward += [_child(s, "downwardAPI", False)
                 for s in _items((_child(volume, "projected", False) or {}).get("sources"))]
    for source in downward:
        for item in _items((source or {}).get("items")):
            _fill(_child(item, "fieldRef", False), {"apiVersion": "v1"})


def _default_secret(obj: dict[str, Any]) -> None:
    """type Opaque; `stringData` is merged into `data` (base64), its keys winning, and is
    not stored, as the API server's conversion does."""
    _fill(obj, {"type": "Opaque"})
    string_data = obj.get("stringData")
    if not isinstance(string_data, dict) or not all(
            isinstance(v, str) for v in string_data.values()):
        return  # validation names the problem
    data = obj.get("data") if obj.get("data") is not None else {}
    if not isinstance(data, dict):
        return
    for key, value in string_data.items():
        data[key] = base64.b64encode(value.encode()).decode()
    obj["data"] = data
    del obj["stringData"]


def default_probe(probe: Any) -> None:
    """Kubernetes' probe defaults, in place (the runtime reads probes through this too)."""
    if isinstance(probe, dict):
        _fill(probe, PROBE_DEFAULTS)
        _fill(probe.get("httpGet"), HTTP_GET_DEFAULTS)

def _default_template(spec: dict[str, Any]) -> None:
    template = spec.get("template")
    if isinstance(template, dict):
        default_pod_spec(template.get("spec"))


def _default_rc(spec: dict[str, Any]) -> None:
    _fill(spec, {"replicas": 1, "minReadySeconds": 0})
    _default_template(spec)
    template_labels = (_child(_child(spec, "template", False), "metadata", False) or {}).get(
        "labels")
    # An RC without a selector selects its template's labels (SetDefaults_ReplicationController).
    if not spec.get("selector") and isinstance(template_labels, dict) and template_labels:
        spec["selector"] = dict(template_labels)


def _default_rs(spec: dict[str, Any]) -> None:
    _fill(spec, {"replicas": 1, "minReadySeconds": 0})
    _default_template(spec)


def _default_deployment(spec: dict[str, Any]) -> None:
    _fill(spec, {"replicas": 1, "minReadySeconds": 0, "revisionHistoryLimit": 10,
                 "progressDeadlineSeconds": 600, "paused": False})
    strategy = _child(spec, "strategy")
    if strategy is not None:
        _fill(strategy, {"type": "RollingUpdate"})
        if strategy["type"] == "RollingUpdate":
            _fill(_child(strategy, "rollingUpdate"), {"maxSurge": "25%", "maxUnavailable": "25%"})
    _default_template(spec)


def _default_statefulset(spec: dict[str, Any]) -> None:
    _fill(spec, {"replicas": 1, "minReadySeconds": 0, "revisionHistoryLimit": 10,
                 "podManagementPolicy": "OrderedReady"})
    strategy = _child(spec, "updateStrategy")
    if strategy is not None:
        _fill(strategy, {"type": "RollingUpdate"})
        if strategy["type"] == "RollingUpdate":
            _fill(_child(strategy, "rollingUpdate"), {"partition": 0})
    _fill(_child(spec, "persistentVolumeClaimRetentionPolicy"),
          {"whenDeleted": "Retain", "whenScaled": "Retain"})
    for claim in _items(spec.get("volumeClaimTemplates")):
        _fill(_child(claim, "spec", False), {"volumeMode": "Filesystem"})
    _default_template(spec)


def _default_pvc(spec: dict[str, Any]) -> None:
    _fill(spec, {"volumeMode": "Filesystem"})


SESSION_AFFINITY_TIMEOUT = 10800  # Kubernetes' DefaultClientIPServiceAffinitySeconds (3 h)


def _default_service(spec: dict[str, Any]) -> None:
    """SetDefaults_Service: type, affinity, TCP, targetPort = port; NodePort services route
    external traffic cluster-wide. The clusterIP and nodePorts are allocated on create."""
    _fill(spec, {"type": "ClusterIP", "sessionAffinity": "None",
                 "internalTrafficPolicy": "Cluster"})
    if spec["type"] == "NodePort":
        _fill(spec, {"externalTrafficPolicy": "Cluster"})
    if spec["sessionAffinity"] == "ClientIP":
        _fill(_child(_child(spec, "sessionAffinityConfig"), "clientIP"),
              {"timeoutSeconds": SESSION_AFFINITY_TIMEOUT})
    for port in _items(spec.get("ports")):
        if isinstance(port, dict):
            _fill(port, {"protocol": "TCP"})
            if port.get("targetPort") in (None, 0, ""):
                port["targetPort"] = port.get("port")


_BY_KIND = {
    "Pod": default_pod_spec,
    "ReplicationController": _default_rc,
    "ReplicaSet": _default_rs,
    "Deployment": _default_deployment,
    "StatefulSet": _default_statefulset,
    "PersistentVolumeClaim": _default_pvc,
    "Service": _default_service,
}
