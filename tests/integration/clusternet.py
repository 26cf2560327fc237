"""What the multi-node tests share: a running local cluster, the CLI against one of its
servers, and the cross-node pod traffic check (agents in node netns)."""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute

from tinykube.cluster.local import Agent, LocalCluster
from tinykube.cluster.nodenet import links_in, routes_in
from tinykube.cluster.routes import ROUTE_PROTO
from tinykube.testing.daemon import wait_for


@contextlib.contextmanager
def running_cluster(root: Path, servers: int = 1, **options: Any) -> Iterator[LocalCluster]:
    """A LocalCluster with `servers` servers started (agents are the test's to add), cleaned
    up whatever happens."""
    cluster = LocalCluster(root, **options)
    try:
        for _ in range(servers):
            cluster.start_server()
        yield cluster
    finally:
        cluster.cleanup()


def tk(cluster: LocalCluster, *args: str, server: int = 1, input: str | None = None,
       check: bool = True) -> subprocess.CompletedProcess:
    """`tinykube ARGS` against one of the cluster's servers; with `check`, a failure raises
    with the command's output."""
    result = subprocess.run([sys.executable, "-m", "tinykube.cli.main", "--socket",
                             str(cluster.socket_of(server)), *args], input=input, text=True,
                            capture_output=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"tinykube {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result

HTTP_SERVER = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  restartPolicy: {restart}
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    command: {command}
"""


# Answers every GET with the address the request came from, as the server saw it.
ECHO_SERVER = ('[python3, -c, "import http.server as h\\n'
               'class E(h.BaseHTTPRequestHandler):\\n'
               '    def do_GET(self):\\n'
               '        body = self.client_address[0].encode()\\n'
               '        self.send_response(200)\\n'
               '        self.send_header(\'Content-Length\', str(len(body)))\\n'
               '        self.end_headers()\\n'
               '        self.wfile.write(body)\\n'
               'h.HTTPServer((\'\', 8080), E).serve_forever()"]')

# Fetches from the server by IP; succeeds only if the server saw this pod's own address
# (routed, not translated on the way).
FETCH = ('[python3, -c, "import http.client, sys, time\\nfor _ in range(100):\\n'
         '    try:\\n'
         '        c = http.client.HTTPConnection(\'{ip}\', 8080, timeout=2)\\n'
         '        c.request(\'GET\', \'/\')\\n'
         '        mine = c.sock.getsockname()[0]\\n'
         '        seen = c.getresponse().read().decode()\\n'
         '        sys.exit(0 if seen == mine else 3)\\n'
         '    except OSError:\\n'
         '        time.sleep(0.2)\\nsys.exit(4)"]')


def host_veth(pod: dict) -> str:
    return f"tkv{pod['metadata']['uid'][:8]}"


def assert_cross_node_fetch(cluster: LocalCluster, client_node: Agent,
                            server_node: Agent) -> None:
    """A pod on `client_node` fetches over HTTP, by IP, from a pod on `server_node`; the
    request must leave the client's node netns through the host-gw route to the server's
    slice via the server node's address (the only route there to that slice), and reach the
    server with the client's own pod IP as its source. Pods client-a and server-b (namespace
    default) are deleted afterwards."""
    a, b = client_node, server_node

    def apply(manifest: str) -> None:
        tk(cluster, "apply", "-f", "-", input=manifest)
    apply(HTTP_SERVER.format(name="server-b", node=b.name, restart="Always",
                             command=ECHO_SERVER))
    server_ip = wait_for(lambda: cluster.client.get("Pod", "server-b", "default").get(
        "status", {}).get("podIP"), timeout=60, what="server-b's IP")
    assert ipaddress.ip_address(server_ip) in ipaddress.ip_network(b.cidr)
    # Node a routes b's slice via b's node address (installed by a's agent, in a's netns
    # only), and reaches b's slice no other way.
    wait_for(lambda: (b.cidr, b.address, ROUTE_PROTO) in routes_in(a.netns), timeout=30,
             what=f"the route to {b.cidr} via {b.address} in {a.netns}")
    assert [r for r in routes_in(a.netns)
            if ipaddress.ip_network(r[0]).overlaps(ipaddress.ip_network(b.cidr))] == [
        (b.cidr, b.address, ROUTE_PROTO)]
    apply(HTTP_SERVER.format(name="client-a", node=a.name, restart="Never",
                             command=FETCH.format(ip=server_ip)))
    done = wait_for(lambda: cluster.client.get("Pod", "client-a", "default").get(
        "status", {}).get("phase") in ("Succeeded", "Failed") and
        cluster.client.get("Pod", "client-a", "default"), timeout=60, what="client-a done")
    state = done["status"]["containerStatuses"][0]["state"]
    assert done["status"]["phase"] == "Succeeded", state
    assert ipaddress.ip_address(done["status"]["podIP"]) in ipaddress.ip_network(a.cidr)
    # The two pods hang off different node netns: a's slice is on a's pod bridge, which
    # only a's netns has, and the server's veth is in b's netns, not in a's nor the host's.
    server = cluster.client.get("Pod", "server-b", "default")
    with IPRoute() as ipr:
        on_host = {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
    assert a.bridge in links_in(a.netns) and a.bridge not in links_in(b.netns) | on_host
    assert host_veth(server) in links_in(b.netns)
    assert host_veth(server) not in links_in(a.netns) | on_host
    for name in ("client-a", "server-b"):
        cluster.client.delete("Pod", name, "default")
    wait_for(lambda: not {"client-a", "server-b"} & {
        p["metadata"]["name"] for p in cluster.client.list("Pod", "default")}, timeout=60,
        what="both pods gone")
