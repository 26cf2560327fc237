"""Cluster DNS answers (pure index + dnspython messages): ClusterIP, headless sets, pod
hostnames, SRV for named ports, NODATA vs NXDOMAIN, names outside the zone not ours."""

import dns.message
import dns.rcode
import dns.rdatatype

from tinykube.services.dnsrecords import build_index
from tinykube.services.dnsserver import answer, parse_upstream

SERVICES = [
    {"metadata": {"name": "web", "namespace": "default"},
     "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80,
                                                    "protocol": "TCP"}]}},
    {"metadata": {"name": "nginx", "namespace": "default"},
     "spec": {"clusterIP": "None", "ports": [{"name": "web", "port": 80, "protocol": "TCP"}]}},
]
SLICES = [{
    "metadata": {"name": "nginx-x", "namespace": "default",
                 "labels": {"kubernetes.io/service-name": "nginx"}},
    "addressType": "IPv4", "ports": [{"name": "web", "port": 8080, "protocol": "TCP"}],
    "endpoints": [
        {"addresses": ["10.88.0.2"], "hostname": "web-0", "conditions": {"ready": True}},
        {"addresses": ["10.88.0.3"], "hostname": "web-1", "conditions": {"ready": True}},
        {"addresses": ["10.88.0.4"], "hostname": "web-2", "conditions": {"ready": False}},
    ]}]
INDEX = build_index(SERVICES, SLICES)


def ask(name, rdtype="A"):
    return answer(INDEX, dns.message.make_query(name, rdtype))


def addresses(response):
    return sorted(r.address for rrset in response.answer for r in rrset
                  if rrset.rdtype == dns.rdatatype.A)


def test_cluster_ip_and_headless_sets():
    assert addresses(ask("web.default.svc.cluster.local.")) == ["10.96.0.10"]
    assert addresses(ask("nginx.default.svc.cluster.local.")) == ["10.88.0.2", "10.88.0.3"]
    assert addresses(ask("web-0.nginx.default.svc.cluster.local.")) == ["10.88.0.2"]
    assert addresses(ask("WEB-1.Nginx.default.svc.cluster.local")) == ["10.88.0.3"]


def test_not_ready_endpoints_are_not_published():
    assert ask("web-2.nginx.default.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN


def test_srv_for_named_ports():
    response = ask("_web._tcp.nginx.default.svc.cluster.local.", "SRV")
    targets = sorted((r.port, r.target.to_text()) for rrset in response.answer for r in rrset)
    assert targets == [(8080, "web-0.nginx.default.svc.cluster.local."),
                       (8080, "web-1.nginx.default.svc.cluster.local.")]
    assert addresses(dns.message.Message()) == []
    assert len(response.additional) == 2
    (rrset,) = ask("_http._tcp.web.default.svc.cluster.local.", "SRV").answer
    assert [r.port for r in rrset] == [80]


def test_nodata_nxdomain_and_foreign_names():
    nodata = ask("web.default.svc.cluster.local.", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert ask("default.svc.cluster.local.").rcode() == dns.rcode.NOERROR
    missing = ask("nope.default.svc.cluster.local.")
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert ask("example.com.") is None  # not ours: forwarded or refused by the server


def test_upstream_forms():
    assert parse_upstream("none") is None
    assert parse_upstream("127.0.0.1:5353").port == 5353
    assert parse_upstream("10.0.0.1").port == 53


def test_pod_resolv_conf_as_the_kubelet_writes_it():
    from tinykube.runtime.hostsfile import RESOLV_CONF, resolv_conf

    text = resolv_conf("team-a", "10.88.0.1")
    assert text.splitlines() == [
        "search team-a.svc.cluster.local svc.cluster.local cluster.local",
        "nameserver 10.88.0.1", "options ndots:5"]
    assert resolv_conf("team-a", None) == RESOLV_CONF  # no cluster DNS: no nameserver
    assert "nameserver" not in RESOLV_CONF
