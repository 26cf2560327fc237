"""ClusterIPs and NodePorts for Services, allocated when a Service is created.

The store is the record: every allocated address is some Service's `spec.clusterIP`, so the
allocations survive restarts with the objects that hold them, and deleting a Service frees
its address (Kubernetes keeps the same facts as IPAddress objects beside the Services). An
allocation and the create that stores it run under one lock, so two concurrent creates never
get the same address.

Addresses are handed out next-fit from the service CIDR (default 10.96.0.0/16), skipping the
network and broadcast addresses; a requested `spec.clusterIP` is honoured when it is inside
the CIDR and free, refused with a field error naming the Service that holds it otherwise.
NodePorts come from 30000-32767 the same way; a requested one must be free.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from tinykube.model.errors import FieldError, Invalid
from tinykube.model.validation import NODE_PORT_RANGE

if TYPE_CHECKING:
    from tinykube.store import Store

DEFAULT_SERVICE_CIDR = "10.96.0.0/16"


class ServiceAllocator:
    def __init__(self, store: Store, cidr: str = DEFAULT_SERVICE_CIDR) -> None:
        self.store = store
        self.network = ipaddress.IPv4Network(cidr, strict=True)
        self._lock = trio.Lock()
        self._last_ip: int | None = None
        self._last_port: int | None = None

    async def create(self, obj: dict, create: Callable[[dict], Awaitable[dict]]) -> dict:
        """Fill in `obj`'s clusterIP and nodePorts (a Service), then `create(obj)`, atomically
        with respect to other Service creates."""
        async with self._lock:
            self.allocate(obj)
            return await create(obj)

    def allocate(self, obj: dict) -> None:
        spec = obj.setdefault("spec", {})
        others = [s for s in self.store.list("Service")
                  if s["metadata"].get("uid") != obj["metadata"].get("uid")]
        self._allocate_ip(obj, spec, others)
        if spec.get("type") == "NodePort":
            self._allocate_node_ports(obj, spec, others)

    def _allocate_ip(self, obj: dict, spec: dict, others: list[dict]) -> None:
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        requested = spec.get("clusterIP") or (spec.get("clusterIPs") or [None])[0]
        if requested == "None":
            spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
            return
        taken = {s["spec"].get("clusterIP"): s for s in others}
        if requested:
            address = ipaddress.IPv4Address(requested)
            if address not in self.network or address in (self.network.network_address,
                                                          self.network.broadcast_address):
                _refuse(obj, "spec.clusterIP", requested,
                        f"the provided IP ({requested}) is not in the valid range. The range "
                        f"of valid IPs is {self.network}")
            holder = taken.get(requested)
            if holder is not None:
                _refuse(obj, "spec.clusterIP", requested,
                        f"failed to allocate IP {requested}: provided IP is already allocated "
                        f"(to service {_name(holder)})")
            ip = requested
        else:
            ip = self._next_ip(set(taken))
        spec["clusterIP"], spec["clusterIPs"] = ip, [ip]

    def _next_ip(self, taken: set[Any]) -> str:
        first = int(self.network.network_address) + 1
        size = self.network.num_addresses - 2
        start = 0 if self._last_ip is None else (self._last_ip - first + 1) % size
        for step in range(size):
            candidate = first + (start + step) % size
            text = str(ipaddress.IPv4Address(candidate))
            if text not in taken:
                self._last_ip = candidate
                return text
        raise Invalid("Service", "", [FieldError(
            "spec.clusterIP", f"Internal error: no free address left in {self.network}")])

    def _allocate_node_ports(self, obj: dict, spec: dict, others: list[dict]) -> None:
        taken: dict[tuple[int, str], dict] = {}
        for other in others:
            for port in other["spec"].get("ports") or []:
                if port.get("nodePort"):
                    taken[(port["nodePort"], port.get("protocol") or "TCP")] = other
        for i, port in enumerate(spec.get("ports") or []):
            protocol = port.get("protocol") or "TCP"
            wanted = port.get("nodePort")
            if wanted:
                holder = taken.get((wanted, protocol))
                if holder is not None:
                    _refuse(obj, f"spec.ports[{i}].nodePort", wanted,
                            f"provided port is already allocated (to service {_name(holder)})")
            else:
                wanted = self._next_port({p for p, proto in taken if proto == protocol})
                port["nodePort"] = wanted
            taken[(wanted, protocol)] = obj

    def _next_port(self, taken: set[int]) -> int:
        low, high = NODE_PORT_RANGE
        size = high - low + 1
        start = 0 if self._last_port is None else (self._last_port - low + 1) % size
        for step in range(size):
            candidate = low + (start + step) % size
            if candidate not in taken:
                self._last_port = candidate
                return candidate
        raise Invalid("Service", "", [FieldError("spec.ports", "Internal error: no free "
                                                 f"node port left in {low}-{high}")])


def keep_allocated(current: dict, new: dict) -> None:
    """An update that leaves clusterIP or a port's nodePort unset keeps the allocated ones
    (as Kubernetes' service REST update does), so `kubectl apply` of the original manifest
    is not a change."""
    old_spec, spec = current.get("spec") or {}, new.get("spec")
    if not isinstance(spec, dict):
        return
    for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        if not spec.get(field) and old_spec.get(field):
            spec[field] = old_spec[field]
    if spec.get("type") == "NodePort" and old_spec.get("type") == "NodePort":
        old_ports = {(p.get("port"), p.get("protocol") or "TCP"): p.get("nodePort")
                     for p in old_spec.get("ports") or []}
        for port in spec.get("ports") or []:
            if isinstance(port, dict) and not port.get("nodePort"):
                old = old_ports.get((port.get("port"), port.get("protocol") or "TCP"))
                if old:
                    port["nodePort"] = old


def _name(service: dict) -> str:
    meta = service["metadata"]
    return f"{meta.get('namespace') or 'default'}/{meta['name']}"


def _refuse(obj: dict, path: str, value: Any, message: str) -> None:
    raise Invalid.for_object(obj, [FieldError.invalid(path, value, message)])
