"""The service proxy's nftables rules, computed from Services and EndpointSlices (pure).

The shape follows kube-proxy's nftables mode, in one table of tinykube's own
(`ip tinykube_<bridge>`, so several daemons on one machine never touch each other's rules):

    nat-prerouting / nat-output (dstnat)  ──jump──▶ services
    services:  ip daddr <clusterIP> tcp dport <port>        goto svc-…
               ip daddr {<node addresses>} tcp dport <nodePort>  goto ext-…  (NodePort)
    ext-…:     mark for masquerade, goto svc-…
    svc-…:     [ip saddr @aff-… goto ep-…]  (ClientIP affinity: the endpoint seen last)
               numgen random mod N vmap { 0: goto ep-…, 1: goto ep-…, … }
    ep-…:      ip saddr <ep ip> mark for masquerade   (hairpin: a pod reaching itself)
               [update @aff-… { ip saddr }]
               dnat to <ep ip>:<port>
    nat-postrouting (srcnat): marked ─▶ masquerade
    filter-forward / filter-output: ip daddr . port of a service without ready endpoints
               ─▶ reject (connection refused at once, as kube-proxy does); forward from
               the bridge to any other interface ─▶ drop (pods reach only pods and services)

The random choice is made once per connection: conntrack remembers the DNAT, so later packets
and established connections never see these rules again, and replacing the rules does not
disturb them. Traffic to a ClusterIP from outside the pod network (the host) is masqueraded
too, since pods have no route back to it.

`ruleset(...)` returns one `nft -j` transaction that makes the table hold exactly the wanted
rules: missing chains and sets are added, every chain whose rules changed (all of them on the
first sync after a start) is flushed and refilled, chains and sets no longer wanted are
deleted; the kernel switches from old to new rules atomically.
Affinity sets are kept across updates (only added, never flushed) so a client stays with its
endpoint when another endpoint comes or goes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from tinykube.model.meta import ipv4_slices_by_service

MASQ_MARK = 0x4000  # kube-proxy's masquerade bit
FAMILY = "ip"


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service, with the ready endpoints it forwards to."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # "tcp" or "udp"
    cluster_ip: str | None  # None: headless (no virtual IP)
    port: int
    node_port: int | None
    endpoints: tuple[Endpoint, ...]
    affinity_seconds: int | None = None  # ClientIP session affinity timeout

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}/{self.protocol}/{self.port_name or self.port}"


@dataclass
class Tables:
    """What the kernel holds: chain and set names (read from the kernel at start, then
    remembered), and after a sync of ours the rules of every chain, so the next transaction
    rewrites only the chains whose rules changed (None: unknown, rewrite them all)."""

    chains: set[str] = field(default_factory=set)
    sets: set[str] = field(default_factory=set)
    rules: dict[str, list[list[dict]]] | None = None


def table_name(bridge: str) -> str:
    return f"tinykube_{bridge}"


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def svc_chain(sp: ServicePort) -> str:
    return f"svc-{_short(sp.id)}-{sp.id}"


def ext_chain(sp: ServicePort) -> str:
    return f"ext-{_short(sp.id)}-{sp.id}"


def ep_chain(sp: ServicePort, ep: Endpoint) -> str:
    return f"ep-{_short(sp.id + ep.ip)}-{sp.id}__{ep.ip}/{ep.port}"


def affinity_set(sp: ServicePort, ep: Endpoint) -> str:
    # Set names are at most 255 characters but some nft versions refuse "/" in them.
    return f"aff-{_short(sp.id + ep.ip + str(ep.port))}"


# ---- expression helpers (nft JSON) --------------------------------------------------------

def _match(left: Any, right: Any, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def _ip(field_name: str) -> dict:
    return {"payload": {"protocol": "ip", "field": field_name}}


def _dport(protocol: str) -> dict:
    return {"payload": {"protocol": protocol, "field": "dport"}}


_MARK = {"meta": {"key": "mark"}}
_SET_MASQ_MARK = {"mangle": {"key": _MARK, "value": {"|": [_MARK, MASQ_MARK]}}}
_MARKED = _match({"&": [_MARK, MASQ_MARK]}, MASQ_MARK)


def _goto(chain: str) -> dict:
    return {"goto": {"target": chain}}


def _jump(chain: str) -> dict:
    return {"jump": {"target": chain}}


# ---- the ruleset --------------------------------------------------------------------------

@dataclass(frozen=True)
class NetworkFacts:
    """Where the proxy sits: the bridge, the pod CIDR, and the host addresses NodePorts
    answer on (the bridge's address, 127.0.0.1)."""

    bridge: str
    pod_cidr: str
    node_addresses: tuple[str, ...]


def ruleset(facts: NetworkFacts, ports: list[ServicePort], before: Tables) -> tuple[list[dict],
                                                                                    Tables]:
    """The `nft -j` commands that make the table hold exactly the rules for `ports`, and the
    chains and sets it then has."""
    table = table_name(facts.bridge)
    base_chains = {
        "nat-prerouting": ("nat", "prerouting", -100),
        "nat-output": ("nat", "output", -100),
        "nat-postrouting": ("nat", "postrouting", 100),
        "filter-forward": ("filter", "forward", -10),
        "filter-output": ("filter", "output", -10),
    }
    rules: list[tuple[str, list[dict]]] = []
    chains: list[str] = ["services", "no-endpoints", "mark-for-masquerade"]
    sets: dict[str, int] = {}

    rules.append(("nat-prerouting", [_jump("services")]))
    rules.append(("nat-output", [_jump("services")]))
    rules.append(("nat-postrouting", [_MARKED, {"masquerade": None}]))
    rules.append(("mark-for-masquerade", [_SET_MASQ_MARK]))
    for chain in ("filter-forward", "filter-output"):
        rules.append((chain, [_match({"ct": {"key": "state"}}, {"set": ["new"]}, "in"),
                              _jump("no-endpoints")]))
    # Pods reach pods and services only: nothing from the bridge is forwarded elsewhere.
    rules.append(("filter-forward", [_match({"meta": {"key": "iifname"}}, facts.bridge),
                                     _match({"meta": {"key": "oifname"}}, facts.bridge, "!="),
                                     {"drop": None}]))

    for sp in sorted(ports, key=lambda p: p.id):
        proto = sp.protocol
        if not sp.endpoints:
            # kube-proxy's no-endpoint-services: refuse at once instead of a timeout.
            if sp.cluster_ip:
                rules.append(("no-endpoints", [
                    _match(_ip("daddr"), sp.cluster_ip), _match(_dport(proto), sp.port),
                    {"reject": {"type": "icmp", "expr": "port-unreachable"}}]))
            if sp.node_port:
                rules.append(("no-endpoints", [
                    _match(_ip("daddr"), {"set": list(facts.node_addresses)}),
                    _match(_dport(proto), sp.node_port),
                    {"reject": {"type": "icmp", "expr": "port-unreachable"}}]))
            continue
        svc = svc_chain(sp)
        chains.append(svc)
        if sp.cluster_ip:
            # From outside the pod network (the host): masquerade, pods have no route back.
            rules.append(("services", [
                _match(_ip("daddr"), sp.cluster_ip), _match(_dport(proto), sp.port),
                _match(_ip("saddr"), {"prefix": _prefix(facts.pod_cidr)}, "!="),
                _jump("mark-for-masquerade")]))
            rules.append(("services", [
                _match(_ip("daddr"), sp.cluster_ip), _match(_dport(proto), sp.port),
                _goto(svc)]))
        if sp.node_port:
            ext = ext_chain(sp)
            chains.append(ext)
            rules.append(("services", [
                _match(_ip("daddr"), {"set": list(facts.node_addresses)}),
                _match(_dport(proto), sp.node_port), _goto(ext)]))
            rules.append((ext, [_jump("mark-for-masquerade")]))
            rules.append((ext, [_goto(svc)]))
        endpoints = sorted(sp.endpoints, key=lambda e: (e.ip, e.port))
        if sp.affinity_seconds:
            for ep in endpoints:
                name = affinity_set(sp, ep)
                sets[name] = sp.affinity_seconds
                rules.append((svc, [_match(_ip("saddr"), f"@{name}"), _goto(ep_chain(sp, ep))]))
        rules.append((svc, [{"vmap": {
            "key": {"numgen": {"mode": "random", "mod": len(endpoints), "offset": 0}},
            "data": {"set": [[i, _goto(ep_chain(sp, ep))] for i, ep in enumerate(endpoints)]},
        }}]))
        for ep in endpoints:
            chain = ep_chain(sp, ep)
            chains.append(chain)
            rules.append((chain, [_match(_ip("saddr"), ep.ip), _jump("mark-for-masquerade")]))
            if sp.affinity_seconds:
                rules.append((chain, [{"set": {"op": "update", "elem": _ip("saddr"),
                                               "set": f"@{affinity_set(sp, ep)}"}}]))
            rules.append((chain, [_match({"meta": {"key": "l4proto"}}, proto),
                                  {"dnat": {"addr": ep.ip, "port": ep.port}}]))

    by_chain: dict[str, list[list[dict]]] = {name: [] for name in [*base_chains, *chains]}
    for chain, expr in rules:
        by_chain[chain].append(expr)
    known = before.rules if before.rules is not None else {}
    # Unchanged chains are left alone: an endpoint change rewrites a few chains, not all.
    changed = [name for name, exprs in by_chain.items()
               if before.rules is None or name not in before.chains or known.get(name) != exprs]

    def ref(name: str) -> dict:
        return {"family": FAMILY, "table": table, "name": name}

    commands: list[dict] = [{"add": {"table": {"family": FAMILY, "name": table}}}]
    for name, (kind, hook, priority) in base_chains.items():
        if name not in before.chains:
            commands.append({"add": {"chain": {**ref(name), "type": kind, "hook": hook,
                                               "prio": priority, "policy": "accept"}}})
    for name in chains:
        if name not in before.chains:
            commands.append({"add": {"chain": ref(name)}})
    for name, timeout in sets.items():
        if name not in before.sets:
            commands.append({"add": {"set": {**ref(name), "type": "ipv4_addr",
                                             "flags": ["timeout"], "timeout": timeout}}})
    wanted_chains = set(by_chain)
    stale_chains = before.chains - wanted_chains
    # Every chain that could point at a stale chain or set is flushed first: a rule names a
    # chain or set, so whatever pointed at a removed one has changed itself.
    for name in sorted(set(changed) | stale_chains):
        commands.append({"flush": {"chain": ref(name)}})
    for name in sorted(stale_chains):
        commands.append({"delete": {"chain": ref(name)}})
    for name in sorted(before.sets - set(sets)):
        commands.append({"delete": {"set": ref(name)}})
    for name in changed:
        for expr in by_chain[name]:
            commands.append({"add": {"rule": {"family": FAMILY, "table": table, "chain": name,
                                              "expr": expr}}})
    return commands, Tables(chains=wanted_chains, sets=set(sets), rules=by_chain)


def _prefix(cidr: str) -> dict:
    address, _, length = cidr.partition("/")
    return {"addr": address, "len": int(length)}


# ---- from objects -------------------------------------------------------------------------

def service_ports(services: list[dict], slices: list[dict]) -> list[ServicePort]:
    """Every (Service, port) with a virtual IP or a NodePort, and its ready endpoints from the
    Service's EndpointSlices (ready condition unset counts as ready, as in Kubernetes)."""
    by_service = ipv4_slices_by_service(slices)
    found = []
    for service in services:
        meta, spec = service["metadata"], service.get("spec") or {}
        namespace = meta.get("namespace") or "default"
        cluster_ip = spec.get("clusterIP")
        if cluster_ip in (None, "", "None"):
            cluster_ip = None
        affinity = None
        if spec.get("sessionAffinity") == "ClientIP":
            affinity = int(((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
                           .get("timeoutSeconds") or 10800)
        for port in spec.get("ports") or []:
            protocol = (port.get("protocol") or "TCP").lower()
            node_port = port.get("nodePort") if spec.get("type") == "NodePort" else None
            if protocol not in ("tcp", "udp") or (cluster_ip is None and not node_port):
                continue
            name = port.get("name") or ""
            endpoints = set()
            for endpoint_slice in by_service.get((namespace, meta["name"]), []):
                numbers = [p.get("port") for p in endpoint_slice.get("ports") or []
                           if (p.get("name") or "") == name
                           and (p.get("protocol") or "TCP").lower() == protocol]
                if not numbers:
                    continue
                for endpoint in endpoint_slice.get("endpoints") or []:
                    if (endpoint.get("conditions") or {}).get("ready") is False:
                        continue
                    for address in endpoint.get("addresses") or []:
                        endpoints.add(Endpoint(address, int(numbers[0])))
            found.append(ServicePort(namespace, meta["name"], name, protocol, cluster_ip,
                                     int(port["port"]), node_port,
                                     tuple(sorted(endpoints, key=lambda e: (e.ip, e.port))),
                                     affinity))
    return found
