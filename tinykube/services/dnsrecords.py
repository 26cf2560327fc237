"""Cluster DNS records from Services and EndpointSlices, as CoreDNS's kubernetes plugin
serves them (pure; the server is `dnsserver`).

    <svc>.<ns>.svc.cluster.local              A    the ClusterIP, or for a headless Service
                                                   every ready endpoint's IP
    <hostname>.<svc>.<ns>.svc.cluster.local   A    a headless Service's endpoint with a
                                                   hostname (StatefulSet pods: web-0.nginx)
    <a-b-c-d>.<svc>.<ns>.svc.cluster.local    A    a headless endpoint without one
    _<port>._<proto>.<svc>.<ns>.svc.cluster.local  SRV  each named port: the Service's name
                                                   (ClusterIP) or each endpoint (headless)

Short names (`nginx`, `nginx.default`) are the resolver's job: a pod's resolv.conf searches
`<ns>.svc.cluster.local svc.cluster.local cluster.local` with `ndots:5`, as the kubelet
writes it. Names that exist but have no record of the asked type (AAAA, or the empty
`svc.cluster.local`) are NOERROR without answers, not NXDOMAIN, so resolvers that ask A and
AAAA together keep the A answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tinykube.model.meta import ipv4_slices_by_service

CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class Srv:
    port: int
    target: str
    weight: int = 100
    priority: int = 0


@dataclass
class DnsIndex:
    domain: str = CLUSTER_DOMAIN
    a: dict[str, list[str]] = field(default_factory=dict)
    srv: dict[str, list[Srv]] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)  # every name that exists (incl. empty ones)

    def in_zone(self, name: str) -> bool:
        return name == self.domain or name.endswith("." + self.domain)

    def exists(self, name: str) -> bool:
        return name in self.names

    def _add_name(self, name: str) -> None:
        # Each ancestor inside the zone exists too (an empty non-terminal).
        while self.in_zone(name) and name not in self.names:
            self.names.add(name)
            name = name.partition(".")[2]

    def add_a(self, name: str, ip: str) -> None:
        self._add_name(name)
        ips = self.a.setdefault(name, [])
        if ip not in ips:
            ips.append(ip)

    def add_srv(self, name: str, srv: Srv) -> None:
        self._add_name(name)
        self.srv.setdefault(name, []).append(srv)


def normalize(name: str) -> str:
    return name.rstrip(".").lower()


def dashed(ip: str) -> str:
    return ip.replace(".", "-")


def build_index(services: list[dict], slices: list[dict],
                domain: str = CLUSTER_DOMAIN) -> DnsIndex:
    index = DnsIndex(domain=domain)
    index._add_name(f"svc.{domain}")
    by_service = ipv4_slices_by_service(slices)
    for service in services:
        meta, spec = service["metadata"], service.get("spec") or {}
        namespace = meta.get("namespace") or "default"
        base = f"{meta['name']}.{namespace}.svc.{domain}"
        index._add_name(base)
        cluster_ip = spec.get("clusterIP")
        named_ports = [p for p in spec.get("ports") or [] if p.get("name")]
        if cluster_ip and cluster_ip != "None":
            index.add_a(base, cluster_ip)
            for port in named_ports:
                index.add_srv(_srv_name(port["name"], port.get("protocol"), base),
                              Srv(int(port["port"]), base))
            continue
        for endpoint_slice in by_service.get((namespace, meta["name"]), []):
            slice_ports = {(p.get("name") or "", (p.get("protocol") or "TCP")): p.get("port")
                           for p in endpoint_slice.get("ports") or []}
            for endpoint in endpoint_slice.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready") is False:
                    continue
                for ip in endpoint.get("addresses") or []:
                    index.add_a(base, ip)
                    host = f"{endpoint.get('hostname') or dashed(ip)}.{base}"
                    index.add_a(host, ip)
                    for port in named_ports:
                        protocol = port.get("protocol") or "TCP"
                        number = slice_ports.get((port["name"], protocol))
                        if number:
                            index.add_srv(_srv_name(port["name"], protocol, base),
                                          Srv(int(number), host))
    for name in index.srv:  # the same order every time
        index.srv[name].sort(key=lambda s: (s.target, s.port))
    return index


def _srv_name(port_name: str, protocol: str | None, base: str) -> str:
    return f"_{port_name}._{(protocol or 'TCP').lower()}.{base}"

