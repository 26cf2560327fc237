"""EndpointSlices for Services: which pods, at which address and port, are behind a Service.

`plan_slices` is the whole decision, pure: from a Service, the pods its selector matches and
the slices it already has, the slices to create, update and delete. `reconcile` applies it,
as Kubernetes' EndpointSlice controller does:

- a pod is an endpoint once it has an IP and until it is Succeeded/Failed; a terminating pod
  stays, marked `terminating: true`, `serving` = its Ready condition and `ready: false`
  (kube-proxy and the DNS server route only to ready ones; `ready` is true for every
  endpoint when the Service says `publishNotReadyAddresses`);
- a `targetPort` by name is looked up among each pod's container ports, so pods of one
  Service may listen on different numbers: endpoints are grouped into one slice per distinct
  port list (a pod that lacks a named port is kept with the ports it has);
- a pod whose `hostname` is set and whose `subdomain` is the Service's name gets that
  hostname on its endpoint (`web-0.nginx` DNS records come from there);
- a Service with no selector is left alone: its slices are the user's to write;
- a Service without pods keeps one empty slice, so "no endpoints" is visible.

Slices carry `kubernetes.io/service-name` and the managed-by label Kubernetes uses, and a
controller owner reference, so deleting the Service deletes them (the garbage collector).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from . import base
from .base import ControllerSpec, Key

from tinykube import labels
from tinykube.model import meta as objmeta
from tinykube.model.errors import AlreadyExists, NotFound
from tinykube.model.meta import SERVICE_NAME_LABEL, Obj, owning_service

if TYPE_CHECKING:
    from tinykube.store import Store

MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
API_VERSION = "discovery.k8s.io/v1"

PortList = tuple[tuple[str, str, int], ...]  # (name, protocol, port), in Service port order


@dataclass
class SlicePlan:
    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)


# ---- the pure decision --------------------------------------------------------------------

def service_selector(service: Obj) -> labels.Selector | None:
    """The Service's selector, or None when it has none (then slices are not managed)."""
    selector = (service.get("spec") or {}).get("selector")
    return labels.from_map(selector) if selector else None


def resolve_ports(service: Obj, pod: Obj) -> PortList:
    """The Service's ports as this pod serves them: a named targetPort becomes the number of
    the pod's container port of that name and protocol (skipped when the pod has none)."""
    resolved = []
    for port in (service.get("spec") or {}).get("ports") or []:
        protocol = port.get("protocol") or "TCP"
        target = port.get("targetPort") or port.get("port")
        if isinstance(target, str):
            number = _named_port(pod, target, protocol)
            if number is None:
                continue
            target = number
        resolved.append((port.get("name") or "", protocol, int(target)))
    return tuple(resolved)


def _named_port(pod: Obj, name: str, protocol: str) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == name and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def endpoint_for(service: Obj, pod: Obj) -> dict[str, Any] | None:
    """The pod as an endpoint of `service` (Kubernetes' podToEndpoint), or None when it is
    not one (no IP yet, or finished)."""
    ip = (pod.get("status") or {}).get("podIP")
    if not ip or objmeta.is_terminal(pod):
        return None
    spec = service.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    serving = publish or objmeta.is_ready(pod)
    terminating = objmeta.is_being_deleted(pod)
    meta = pod["metadata"]
    endpoint: dict[str, Any] = {
        "addresses": [ip],
        # `ready` is never true for a terminating pod unless not-ready ones are published.
        "conditions": {"ready": publish or (serving and not terminating), "serving": serving,
                       "terminating": terminating},
        "targetRef": {"kind": "Pod", "namespace": meta.get("namespace") or "default",
                      "name": meta["name"], "uid": meta.get("uid", "")},
    }
    pod_spec = pod.get("spec") or {}
    if (pod_spec.get("hostname") and pod_spec.get("subdomain") == service["metadata"]["name"]):
        endpoint["hostname"] = pod_spec["hostname"]
    if pod_spec.get("nodeName"):
        endpoint["nodeName"] = pod_spec["nodeName"]
    return endpoint


def desired_groups(service: Obj, pods: Iterable[Obj]) -> dict[PortList, list[Obj]]:
    """Endpoints grouped by the port list they serve, each group sorted by pod name."""
    groups: dict[PortList, list[tuple[str, Obj]]] = {}
    for pod in pods:
        endpoint = endpoint_for(service, pod)
        if endpoint is not None:
            groups.setdefault(resolve_ports(service, pod), []).append(
                (pod["metadata"]["name"], endpoint))
    if not groups:
        # No endpoints: one slice still says so, with the ports by number where known.
        groups[_static_ports(service)] = []
    return {ports: [e for _, e in sorted(items, key=lambda item: item[0])]
            for ports, items in groups.items()}


def _static_ports(service: Obj) -> PortList:
    return tuple((p.get("name") or "", p.get("protocol") or "TCP", int(p["targetPort"]))
                 for p in (service.get("spec") or {}).get("ports") or []
                 if isinstance(p.get("targetPort"), int))


def slice_ports(ports: PortList) -> list[dict[str, Any]]:
    return [{"name": name, "protocol": protocol, "port": port} for name, protocol, port in ports]


def ports_of(endpoint_slice: Obj) -> PortList:
    return tuple((p.get("name") or "", p.get("protocol") or "TCP", int(p.get("port") or 0))
                 for p in endpoint_slice.get("ports") or [])


def slice_labels(service: Obj) -> dict[str, str]:
    """The Service's own labels (as Kubernetes copies them) plus the two slice labels."""
    own = dict(service["metadata"].get("labels") or {})
    own.update({SERVICE_NAME_LABEL: service["metadata"]["name"], MANAGED_BY_LABEL: MANAGED_BY})
    return own


def new_slice(service: Obj, ports: PortList, endpoints: list[Obj]) -> Obj:
    name = service["metadata"]["name"]
    return {
        "apiVersion": API_VERSION, "kind": "EndpointSlice",
        "metadata": {"name": base.generated_name(name), "generateName": f"{name}-",
                     "namespace": service["metadata"].get("namespace") or "default",
                     "labels": slice_labels(service),
                     "ownerReferences": [base.owner_ref(service)]},
        "addressType": "IPv4", "endpoints": endpoints, "ports": slice_ports(ports),
    }


def plan_slices(service: Obj, pods: Iterable[Obj], existing: list[Obj]) -> SlicePlan:
    """Create, update and delete so that `existing` (this Service's managed slices) become
    one slice per port list with exactly the endpoints of `pods`. An existing slice keeps
    its name when its port list is still wanted."""
    plan = SlicePlan()
    wanted = desired_groups(service, pods)
    by_ports: dict[PortList, Obj] = {}
    for endpoint_slice in sorted(existing, key=lambda s: s["metadata"]["name"]):
        ports = ports_of(endpoint_slice)
        if ports in wanted and ports not in by_ports:
            by_ports[ports] = endpoint_slice
        else:
            plan.delete.append(endpoint_slice)
    # A slice whose port list went away is reused for a new port list rather than replaced
    # (fewer writes, and watchers see one MODIFIED instead of DELETED + ADDED).
    for ports, endpoints in wanted.items():
        current = by_ports.get(ports)
        if current is None and plan.delete:
            current = plan.delete.pop()
        if current is None:
            plan.create.append(new_slice(service, ports, endpoints))
            continue
        updated = copy.deepcopy(current)
        updated["endpoints"] = endpoints
        updated["ports"] = slice_ports(ports)
        updated["metadata"]["labels"] = slice_labels(service)
        updated["addressType"] = "IPv4"
        if updated != current:
            plan.update.append(updated)
    return plan


# ---- the actuator -------------------------------------------------------------------------

def managed_slices(store: Store, namespace: str, service_name: str) -> list[Obj]:
    return [s for s in store.list("EndpointSlice", namespace)
            if (s["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == service_name
            and (s["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY]


async def reconcile(store: Store, key: Key) -> None:
    namespace, name = key
    service = store.try_get("Service", namespace, name)
    existing = managed_slices(store, namespace, name)
    if service is None or objmeta.is_being_deleted(service):
        for endpoint_slice in existing:
            await _delete(store, endpoint_slice)
        return
    selector = service_selector(service)
    if selector is None:
        return
    existing = [s for s in existing if base.is_controlled_by(s, service)]
    pods = store.list("Pod", namespace, selector.matches)
    plan = plan_slices(service, pods, existing)
    for endpoint_slice in plan.delete:
        await _delete(store, endpoint_slice)
    for endpoint_slice in plan.update:
        await store.update(endpoint_slice)
    for endpoint_slice in plan.create:
        for _ in range(5):
            try:
                await store.create(endpoint_slice)
                break
            except AlreadyExists:
                endpoint_slice["metadata"]["name"] = base.generated_name(name)


async def _delete(store: Store, endpoint_slice: Obj) -> None:
    meta = endpoint_slice["metadata"]
    try:
        await store.delete("EndpointSlice", meta.get("namespace") or "default", meta["name"],
                           uid=meta.get("uid"))
    except NotFound:
        pass


# ---- wiring -------------------------------------------------------------------------------

def _services_of_pod(store: Store, event_type: str, pod: Obj) -> Iterable[Key]:
    """Services whose selector matches the pod now, plus those whose slices name it (its
    labels may have changed, or it is gone)."""
    namespace = pod["metadata"].get("namespace") or "default"
    pod_labels = pod["metadata"].get("labels") or {}
    keys = set()
    for service in store.list("Service", namespace):
        selector = service_selector(service)
        if selector is not None and selector.matches(pod_labels):
            keys.add(base.key_of(service))
    uid = pod["metadata"].get("uid")
    for endpoint_slice in store.list("EndpointSlice", namespace):
        if any((e.get("targetRef") or {}).get("uid") == uid
               for e in endpoint_slice.get("endpoints") or []):
            service_name = owning_service(endpoint_slice)
            if service_name:
                keys.add((namespace, service_name))
    return sorted(keys)


def _service_of_slice(store: Store, event_type: str, endpoint_slice: Obj) -> Iterable[Key]:
    service_name = owning_service(endpoint_slice)
    if not service_name:
        return ()
    return ((endpoint_slice["metadata"].get("namespace") or "default", service_name),)


def controller_spec() -> ControllerSpec:
    return ControllerSpec(name="endpointslice", kind="Service", reconcile=reconcile,
                          watches=[("Pod", _services_of_pod),
                                   ("EndpointSlice", _service_of_slice)])


async def run(store: Store, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED
              ) -> None:
    await base.run_controller(store, controller_spec(), task_status=task_status)
