"""Services: the proxy's rule updates, a pod's way from Ready to reachable, DNS from a pod.

- Rule update: the nftables table for 100 Services x 3 endpoints, as the daemon's proxy
  computes it on every change, then one `nft -j -f` transaction: per update one endpoint
  changes (the transaction rewrites only the chains that changed), and the full rewrite
  the first sync after a daemon start does. On a table of the benchmark's own
  (`tinykube_tkbenchnft`, deleted afterwards).
- Ready → reachable: a Service with one pod behind it; a new pod (readiness probe) replaces
  the old one. From the moment its Ready condition arrives on a pod watch to the first answer
  *from that pod* through the ClusterIP, connecting from the host every 2 ms (a connection
  without an endpoint is refused at once by the proxy, so polling costs nothing).
  Includes the EndpointSlice controller (50 ms event coalescing) and one proxy sync.
- DNS: queries from inside a pod straight to the cluster DNS server (UDP, no search list),
  for a ClusterIP service name; each a fresh socket.
"""

from __future__ import annotations

import json
import textwrap
import time
import urllib.error
import urllib.request

from .context import Context
from .report import Section
from .stats import Summary
from .watching import Watcher

from tinykube.services import nft
from tinykube.services.proxyrules import Endpoint, NetworkFacts, ServicePort, Tables, ruleset

SERVICES = 100
NFT_BRIDGE = "tkbenchnft"  # only names the rule table; no such link is made

SERVER = textwrap.dedent("""\
    import http.server, socket
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = socket.gethostname().encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    http.server.ThreadingHTTPServer(("", 8080), H).serve_forever()
    """)

DIG = textwrap.dedent("""\
    import json, random, socket, struct, sys, time
    name, count = sys.argv[1], int(sys.argv[2])
    server = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")][0]
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0"
    ms, answers = [], 0
    for _ in range(count):
        start = time.perf_counter()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.sendto(struct.pack("!HHHHHH", random.randrange(65536), 0x100, 1, 0, 0, 0) + q
                 + struct.pack("!HH", 1, 1), (server, 53))
        data = s.recv(4096)
        s.close()
        ms.append((time.perf_counter() - start) * 1000)
        answers += struct.unpack("!H", data[6:8])[0] > 0
    print(json.dumps({"ms": ms, "answered": answers}))
    """)


def rule_updates(count: int) -> tuple[list[float], list[float], list[float]]:
    """(compute ms, incremental nft transaction ms, full rewrite ms) for a 100-service
    table; each update moves one endpoint of one service."""
    facts = NetworkFacts(NFT_BRIDGE, "10.236.0.0/16", ("10.236.0.1", "127.0.0.1"))

    def ports(round_: int) -> list[ServicePort]:
        return [ServicePort("bench", f"svc-{i}", "http", "tcp", f"10.237.{i // 250}.{i % 250}",
                            80, None, tuple(Endpoint(f"10.236.{i}.{j + (round_ if i == 0 else 0)}",
                                                     8080) for j in range(1, 4)))
                for i in range(SERVICES)]

    table = f"tinykube_{NFT_BRIDGE}"
    tables = nft.existing(table)
    compute, apply, full = [], [], []
    try:
        for round_ in range(count + 1):
            start = time.perf_counter()
            commands, after = ruleset(facts, ports(round_), tables)
            computed = time.perf_counter()
            nft.apply(commands)
            done = time.perf_counter()
            tables = after
            if round_:  # the first builds the table from nothing
                compute.append((computed - start) * 1000)
                apply.append((done - computed) * 1000)
        for _ in range(max(count // 4, 3)):
            # As after a daemon restart: names known from the kernel, rules not.
            known = Tables(chains=set(tables.chains), sets=set(tables.sets))
            commands, tables = ruleset(facts, ports(count), known)
            start = time.perf_counter()
            nft.apply(commands)
            full.append((time.perf_counter() - start) * 1000)
    finally:
        nft.delete_table(table)
    return compute, apply, full


def _service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}


def _pod(name: str, app: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
                "name": "server", "command": ["python3", "-c", SERVER],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}


def _ready(pod: dict | None) -> bool:
    return bool(pod) and any(c.get("type") == "Ready" and c.get("status") == "True"
                             for c in (pod.get("status") or {}).get("conditions") or [])


def _answer(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read().decode()
    except (TimeoutError, urllib.error.URLError, ConnectionError):
        return None


def ready_to_reachable(d, count: int) -> list[float]:
    d.client.create(_service("reach"))
    cluster_ip = d.client.get("Service", "reach")["spec"]["clusterIP"]
    url = f"http://{cluster_ip}/"
    samples = []
    with Watcher(d.socket, "Pod", label_selector="app=reach") as pods:
        for i in range(count):
            name = f"reach-{i}"
            ready = pods.expect(lambda objs, n=name: _ready(objs.get(n)), f"{name} Ready")
            d.client.create(_pod(name, "reach"))
            if i:
                d.client.delete("Pod", f"reach-{i - 1}", grace_period=0)
            ready_at = ready.wait(60)
            deadline = time.monotonic() + 30
            while _answer(url) != name:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not reachable through {url}")
                time.sleep(0.002)
            samples.append((time.monotonic() - ready_at) * 1000)
    return samples


def dns_from_pod(d, count: int) -> tuple[list[float], int]:
    d.client.create(_pod("dns-client", "dns-client"))
    with Watcher(d.socket, "Pod", label_selector="app=dns-client") as pods:
        pods.expect(lambda objs: _ready(objs.get("dns-client")), "dns-client Ready").wait(60)
    done = d.cli("exec", "dns-client", "--", "python3", "-c", DIG,
                 "reach.default.svc.cluster.local", str(count))
    result = json.loads(done.stdout)
    return result["ms"], result["answered"]


def run(ctx: Context) -> Section:
    section = Section(f"Services ({SERVICES} services in the rule table)")
    compute, apply, full = rule_updates(max(ctx.repeat, 20))
    section.add(f"rule update, {SERVICES} services x 3 endpoints: compute", Summary.of(
        compute, "ms"))
    section.add(f"rule update, {SERVICES} services x 3 endpoints: nft transaction "
                "(one endpoint changed)", Summary.of(apply, "ms"))
    section.add(f"full table rewrite, {SERVICES} services x 3 endpoints (first sync after a "
                "start)", Summary.of(full, "ms"))
    d = ctx.daemon()
    try:
        reach = ready_to_reachable(d, max(ctx.repeat, 10))
        dns_ms, answered = dns_from_pod(d, 200 if not ctx.quick else 50)
        with Watcher(d.socket, "Pod") as pods:
            ctx.pod_uids |= pods.uids
    finally:
        d.purge()
    section.add("pod Ready (watch) → first answer through its ClusterIP", Summary.of(
        reach, "ms"))
    section.add("DNS A query from a pod (UDP, cluster name)", Summary.of(dns_ms, "ms"),
                note=f"{answered}/{len(dns_ms)} answered with records")
    ctx.raw["services"] = {"rule_compute_ms": compute, "rule_apply_ms": apply,
                           "rule_full_rewrite_ms": full,
                           "ready_to_reachable_ms": reach, "dns_ms": dns_ms}
    return section
