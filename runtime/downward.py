"""The downward API: a pod's own fields and its containers' resources as strings, as the
kubelet formats them for env vars (`fieldRef`, `resourceFieldRef`) and downwardAPI files."""

from __future__ import annotations

import math
import os
import re
from typing import Any

from tinykube.model import quantity

_SUBSCRIPT = re.compile(r"metadata\.(labels|annotations)\['(.*)'\]")


class DownwardError(ValueError):
    """A field path or resource the downward API does not offer."""


def field_ref(pod: dict[str, Any], path: str, pod_ip: str | None = None,
              host_ip: str | None = None) -> str:
    """The value of `fieldPath` for this pod. Whole label/annotation maps are `k="v"` lines,
    sorted, as the kubelet writes them into files."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace") or "default",
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName") or "localhost",
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,  # one address family: the list is the one address
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return simple[path] or ""
    if path in ("metadata.labels", "metadata.annotations"):
        values = meta.get(path.split(".")[1]) or {}
        return "\n".join(f"{k}={_go_quote(str(v))}" for k, v in sorted(values.items()))
    match = _SUBSCRIPT.fullmatch(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise DownwardError(f"unsupported fieldPath {path!r}")


def _go_quote(text: str) -> str:
    """Go's %q for the printable text labels and annotations hold."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped.replace(chr(9), chr(92) + "t")}"'


def node_cpu_millis() -> int:
    return (os.cpu_count() or 1) * 1000


def node_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def resource_field(container: dict[str, Any], resource: str, divisor: Any = None) -> str:
    """`limits.cpu` and friends, as the kubelet resolves them: an unset limit is the node's
    allocatable amount, an unset request is the limit if one is set (API defaulting) else 0;
    the value is divided by `divisor` and rounded up."""
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in ("cpu", "memory", "ephemeral-storage"):
        raise DownwardError(f"unsupported resource {resource!r}")
    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    amount = (limits if kind == "limits" else requests).get(name)
    if amount is None and kind == "requests":
        amount = limits.get(name)
    if name == "cpu":
        millis = quantity.cpu_millis(amount) if amount is not None else (
            node_cpu_millis() if kind == "limits" else 0)
        per = quantity.cpu_millis(divisor) if divisor not in (None, "", 0, "0") else 1000
        return str(math.ceil(millis / per))
    if amount is not None:
        value = quantity.memory_bytes(amount)
    elif kind == "limits":
        value = node_memory_bytes() if name == "memory" else _disk_bytes()
    else:
        value = 0
    per = quantity.memory_bytes(divisor) if divisor not in (None, "", 0, "0") else 1
    return str(math.ceil(value / per))


def _disk_bytes() -> int:
    st = os.statvfs("/")
    return st.f_blocks * st.f_frsize
