"""Output helpers: kubectl-style tables, ages and per-kind columns."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import yaml

from tinykube.model.kinds import find
from tinykube.model.meta import parse_time


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """kubectl's human duration (apimachinery's duration.HumanDuration): 5s, 3m12s, 42m,
    3h15m, 20h, 2d6h, 45d, 2y30d."""
    if not timestamp:
        return "<unknown>"
    then = parse_time(timestamp)
    if then is None:
        return "<unknown>"
    return human_duration((now or datetime.now(UTC)).timestamp() - then)


def human_duration(seconds_elapsed: float) -> str:
    seconds = int(seconds_elapsed)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def table(headers: list[str], rows: Iterable[list[str]]) -> str:
    rows = [list(map(str, r)) for r in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    lines = ["   ".join(c.ljust(w) for c, w in zip(headers, widths)).rstrip()]
    for row in rows:
        lines.append("   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def _is_sidecar(container: dict | None) -> bool:
    return (container or {}).get("restartPolicy") == "Always"


def _terminated_text(term: dict, prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + term["reason"]
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{term.get('exitCode')}"


def _pod_summary(pod: dict) -> tuple[str, int, int, int]:
    """kubectl's printPod: (STATUS, ready containers, containers, restarts). Init containers
    first: the first one not done names the status (`Init:N/M`, `Init:<reason>`); native
    sidecars count in READY once started, as containers do."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Pending"
    inits = {c.get("name"): c for c in spec.get("initContainers") or []}
    total = len(spec.get("containers") or []) + sum(map(_is_sidecar, inits.values()))
    ready = restarts = sidecar_restarts = 0
    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += int(cs.get("restartCount", 0))
        state = cs.get("state") or {}
        sidecar = _is_sidecar(inits.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += int(cs.get("restartCount", 0))
            ready += bool(cs.get("ready"))
        waiting = (state.get("waiting") or {}).get("reason")
        if "terminated" in state and state["terminated"].get("exitCode") == 0:
            continue
        if sidecar and cs.get("started"):
            continue
        if "terminated" in state:
            reason = _terminated_text(state["terminated"], "Init:")
        elif waiting and waiting != "PodInitializing":
            reason = "Init:" + waiting
        else:
            reason = f"Init:{i}/{len(inits)}"
        initializing = True
        break
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True"
                      for c in status.get("conditions") or [])
    if not initializing or initialized:
        restarts = sidecar_restarts
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount", 0))
            state = cs.get("state") or {}
            if (state.get("waiting") or {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif "terminated" in state:
                reason = _terminated_text(state["terminated"])
            elif "running" in state and cs.get("ready"):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            ready_condition = any(c.get("type") == "Ready" and c.get("status") == "True"
                                  for c in status.get("conditions") or [])
            reason = "Running" if ready_condition else "NotReady"
    if pod["metadata"].get("deletionTimestamp") and status.get("phase") not in ("Succeeded",
                                                                               "Failed"):
        reason = "Terminating"
    return reason, ready, total, restarts


def pod_status(pod: dict) -> str:
    """What kubectl prints in a pod's STATUS column."""
    return _pod_summary(pod)[0]


def _pod_row(pod: dict) -> list[str]:
    reason, ready, total, restarts = _pod_summary(pod)
    return [f"{ready}/{total}", reason, str(restarts)]


def _replicas_row(obj: dict) -> list[str]:
    spec, status = obj.get("spec", {}), obj.get("status", {})
    return [str(spec.get("replicas", 0)), str(status.get("replicas", 0)),
            str(status.get("readyReplicas", 0))]


def _deploy_row(obj: dict) -> list[str]:
    spec, status = obj.get("spec", {}), obj.get("status", {})
    return [f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            str(status.get("updatedReplicas", 0)), str(status.get("availableReplicas", 0))]


def _sts_row(obj: dict) -> list[str]:
    ready = obj.get("status", {}).get("readyReplicas", 0)
    return [f"{ready}/{obj.get('spec', {}).get('replicas', 0)}"]


def _pvc_row(obj: dict) -> list[str]:
    spec = obj.get("spec", {})
    return [obj.get("status", {}).get("phase", "Pending"), spec.get("volumeName", ""),
            str(spec.get("resources", {}).get("requests", {}).get("storage", "")),
            ",".join(_access_mode(m) for m in spec.get("accessModes", []))]


def _access_mode(mode: str) -> str:
    return {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
            "ReadWriteOncePod": "RWOP"}.get(mode, mode)


def _revision_row(obj: dict) -> list[str]:
    owners = [o for o in obj["metadata"].get("ownerReferences", []) if o.get("controller")]
    owner = f"{owners[0]['kind'].lower()}.apps/{owners[0]['name']}" if owners else "<none>"
    return [owner, str(obj.get("revision", 0))]


def _event_row(obj: dict) -> list[str]:
    inv = obj.get("involvedObject", {})
    return [age(obj.get("lastTimestamp")), obj.get("type", ""), obj.get("reason", ""),
            f"{inv.get('kind', '').lower()}/{inv.get('name', '')}", obj.get("message", "")]


def service_ports(service: dict) -> str:
    """`80/TCP`, `80:30080/TCP` for a NodePort, comma-joined; `<none>` without ports."""
    ports = [f"{p.get('port')}" + (f":{p['nodePort']}" if p.get("nodePort") else "")
             + f"/{p.get('protocol') or 'TCP'}"
             for p in (service.get("spec") or {}).get("ports") or []]
    return ",".join(ports) or "<none>"


def _service_row(obj: dict) -> list[str]:
    spec = obj.get("spec") or {}
    return [spec.get("type") or "ClusterIP", spec.get("clusterIP") or "<none>", "<none>",
            service_ports(obj)]


def _endpoint_slice_row(obj: dict) -> list[str]:
    ports = ",".join(str(p.get("port")) for p in obj.get("ports") or []) or "<unset>"
    addresses = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    shown = ",".join(addresses[:3]) or "<unset>"
    if len(addresses) > 3:
        shown += f" + {len(addresses) - 3} more..."
    return [obj.get("addressType") or "", ports, shown]


def _config_map_row(obj: dict) -> list[str]:
    return [str(len(obj.get("data") or {}) + len(obj.get("binaryData") or {}))]


def _secret_row(obj: dict) -> list[str]:
    return [obj.get("type") or "Opaque", str(len(obj.get("data") or {}))]

def node_ready(node: dict) -> str:
    """The Ready condition's status: `True`, `False` or `Unknown` (no heartbeat yet)."""
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status") or "Unknown")
    return "Unknown"


def _node_row(node: dict) -> list[str]:
    status = {"True": "Ready", "False": "NotReady"}.get(node_ready(node), "Unknown")
    if (node.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    labels = node["metadata"].get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels
                   if k.startswith("node-role.kubernetes.io/") and "/" in k)
    return [status, ",".join(roles) or "<none>"]


def _node_version(node: dict) -> list[str]:
    info = (node.get("status") or {}).get("nodeInfo") or {}
    return [str(info.get("kubeletVersion") or "")]


def node_address(node: dict, kind: str = "InternalIP") -> str | None:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == kind:
            return address.get("address")
    return None


def _lease_row(lease: dict) -> list[str]:
    return [(lease.get("spec") or {}).get("holderIdentity") or ""]


Columns = tuple[list[str], Callable[[dict], list[str]]]

COLUMNS: dict[str, Columns] = {
    "Pod": (["READY", "STATUS", "RESTARTS"], _pod_row),
    "ReplicaSet": (["DESIRED", "CURRENT", "READY"], _replicas_row),
    "ReplicationController": (["DESIRED", "CURRENT", "READY"], _replicas_row),
    "Deployment": (["READY", "UP-TO-DATE", "AVAILABLE"], _deploy_row),
    "StatefulSet": (["READY"], _sts_row),
    "PersistentVolumeClaim": (["STATUS", "VOLUME", "CAPACITY", "ACCESS MODES"], _pvc_row),
    "ControllerRevision": (["CONTROLLER", "REVISION"], _revision_row),
    "Service": (["TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"], _service_row),
    "EndpointSlice": (["ADDRESSTYPE", "PORTS", "ENDPOINTS"], _endpoint_slice_row),
    "ConfigMap": (["DATA"], _config_map_row),
    "Secret": (["TYPE", "DATA"], _secret_row),

    "Node": (["STATUS", "ROLES"], _node_row),
    "Lease": (["HOLDER"], _lease_row),
    "Event": (["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], _event_row),
}


# Columns kubectl prints after AGE (and before the wide ones).
AFTER_AGE: dict[str, Columns] = {"Node": (["VERSION"], _node_version)}


def _wide(obj: dict) -> tuple[list[str], list[str]]:
    info = find(obj["kind"])
    if info is None or not info.wide_columns:
        return [], []
    if info.workload:
        template = obj.get("spec", {}).get("template", {}).get("spec", {})
        names = ",".join(c.get("name", "") for c in template.get("containers", []))
        commands = ",".join(" ".join(c.get("command", []) + c.get("args", []))
                            for c in template.get("containers", []))
        return list(info.wide_columns), [names, commands[:60]]
    if info.kind == "Service":
        selector = (obj.get("spec") or {}).get("selector") or {}
        return list(info.wide_columns), [
            ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"]
    if info.kind == "Node":
        return list(info.wide_columns), [node_address(obj) or "<none>",
                                         (obj.get("spec") or {}).get("podCIDR") or "<none>"]
    return list(info.wide_columns), [obj.get("status", {}).get("podIP") or "<none>",
                                     (obj.get("spec") or {}).get("nodeName") or "<none>"]


def render_table(objects: list[dict], *, wide: bool = False, with_kind: bool = False,
                 all_namespaces: bool = False) -> str:
    if not objects:
        return ""
    kind = objects[0]["kind"]
    headers, row_of = COLUMNS.get(kind, ([], lambda o: []))
    extra_headers = _wide(objects[0])[0] if wide else []
    if kind == "Event":  # kubectl shows events without NAME and AGE
        return table(headers, [_event_row(o) for o in
                               sorted(objects, key=lambda o: o.get("lastTimestamp", ""))])
    after_headers, after_age = AFTER_AGE.get(kind, ([], lambda o: []))
    head = ((["NAMESPACE"] if all_namespaces else []) + ["NAME"] + headers + ["AGE"]
            + after_headers + extra_headers)
    rows = []
    for obj in objects:
        meta = obj["metadata"]
        name = f"{qualified_kind(kind)}/{meta['name']}" if with_kind else meta["name"]
        row = ([meta.get("namespace", "")] if all_namespaces else []) + [name] + row_of(obj)
        row.append(age(meta.get("creationTimestamp")))
        row += after_age(obj)
        if wide:
            row += _wide(obj)[1]
        rows.append(row)
    return table(head, rows)


def render(objects: list[dict], output: str | None, *, single: bool = False,
           all_namespaces: bool = False, with_kind: bool = False) -> str:
    if output == "json":
        if single and len(objects) == 1:
            return json.dumps(objects[0], indent=2)
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2)
    if output == "yaml":
        if single and len(objects) == 1:
            return yaml.safe_dump(objects[0], sort_keys=False).rstrip()
        return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": objects},
                              sort_keys=False).rstrip()
    if output == "name":
        return "\n".join(f"{qualified_kind(o['kind'])}/{o['metadata']['name']}" for o in objects)
    return render_table(objects, wide=output == "wide", with_kind=with_kind,
                        all_namespaces=all_namespaces)


def qualified_kind(kind: str) -> str:
    """`pod`, `deployment.apps`: how kubectl names a kind in `kind/name` output."""
    info = find(kind)
    return f"{kind.lower()}.{info.group}" if info and info.group else kind.lower()


def dump_yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False).rstrip()
