"""`tinykube server` and `tinykube agent` as real processes: agents register Nodes, the
scheduler spreads a Deployment over them, each agent runs only its pods and reports their
status through the API; an agent that stops heartbeating turns Unknown and its pods are
replaced on the other node after the (test-short) eviction timeout."""

from __future__ import annotations

import ipaddress
import subprocess
import sys

import pytest
from pyroute2 import IPRoute

from tinykube.cluster.local import LocalCluster
from tinykube.cluster.nodenet import links_in, routes_in
from tinykube.cluster.routes import ROUTE_PROTO
from tinykube.testing.daemon import wait_for

pytestmark = pytest.mark.root

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        command: [sh, -c, 'trap "exit 0" TERM; while :; do sleep 0.1; done']
"""


@pytest.fixture
def cluster(tmp_path):
    c = LocalCluster(tmp_path)
    try:
        c.start_server()
        yield c
    finally:
        c.cleanup()


def running_by_node(cluster) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for pod in cluster.client.list("Pod", "default"):
        if pod.get("status", {}).get("phase") == "Running" and not pod["metadata"].get(
                "deletionTimestamp"):
            found.setdefault(pod["spec"].get("nodeName"), []).append(pod)
    return found


def test_agents_run_the_pods_bound_to_them_and_failed_nodes_are_drained(cluster, tmp_path):
    a, b = cluster.add_agent(), cluster.add_agent()
    apply = subprocess.run(
        [sys.executable, "-m", "tinykube.cli.main", "--socket",
         str(cluster.socket_of(1)), "apply", "-f", "-"], input=DEPLOYMENT, text=True,
        capture_output=True, check=True)
    assert "created" in apply.stdout
    wait_for(lambda: {n: len(p) for n, p in running_by_node(cluster).items()} ==
             {a.name: 2, b.name: 2}, timeout=60, what="2 running pods per node")
    for node_name, agent in ((a.name, a), (b.name, b)):
        for pod in running_by_node(cluster)[node_name]:
            # Status came back through the API: an address from that node's own slice.
            assert ipaddress.ip_address(pod["status"]["podIP"]) in \
                ipaddress.ip_network(agent.cidr)
    # Agent a stops (its pods keep running, as a kubelet's do): Unknown, then drained.
    a.stop()
    wait_for(lambda: not cluster.node_ready(a.name), timeout=30, what=f"{a.name} not Ready")
    wait_for(lambda: {n: len(p) for n, p in running_by_node(cluster).items()
                      if n == b.name} == {b.name: 4}, timeout=60,
             what="a's pods replaced on b")
    node = cluster.client.get("Node", a.name, "default")
    (ready,) = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert (ready["status"], ready["reason"]) == ("Unknown", "NodeStatusUnknown")
    stuck = [p for p in cluster.client.list("Pod", "default")
             if p["spec"].get("nodeName") == a.name]
    assert stuck and all(p["metadata"].get("deletionTimestamp") for p in stuck)
    # a comes back: its kubelet finishes the deletions, and the node is Ready again.
    a.start()
    wait_for(lambda: cluster.node_ready(a.name), timeout=30, what=f"{a.name} Ready again")
    wait_for(lambda: not [p for p in cluster.client.list("Pod", "default")
                          if p["spec"].get("nodeName") == a.name], timeout=60,
             what="a's evicted pods finished by its agent")
    cluster.client.delete("Deployment", "web", "default")
    wait_for(lambda: not cluster.client.list("Pod", "default"), timeout=60,
             what="all pods gone")


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


def test_a_pod_fetches_over_http_from_a_pod_on_another_node(cluster):
    """Each agent in its own node netns: the client pod's packets leave node a through the
    host-gw route to b's slice via b's node address, cross the cluster bridge, and reach the
    server pod with the client's own pod IP as their source."""
    a, b = cluster.add_agent(), cluster.add_agent()

    def apply(manifest):
        subprocess.run([sys.executable, "-m", "tinykube.cli.main", "--socket",
                        str(cluster.socket_of(1)), "apply", "-f", "-"], input=manifest,
                       text=True, capture_output=True, check=True, timeout=60)
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
    wait_for(lambda: not cluster.client.list("Pod", "default"), timeout=60,
             what="all pods gone")
