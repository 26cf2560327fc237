"""Services on a real daemon and the real kernel: EndpointSlices follow readiness, nftables
DNAT spreads connections over every ready pod, hairpin, NodePort from the host through the
bridge's address (and 127.0.0.1), no failed request through a readiness-gated rolling update,
and `reset` removes the proxy's table (checked by every daemon's cleanup, `assert_no_leaks`).

Traffic goes only to pod and service addresses inside this daemon's namespaces and to the
bridge's address / loopback on the host.
"""

from __future__ import annotations

import collections
import http.client
import ipaddress
import json
import re
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import pytest

from tests.integration.daemon import wait_for

pytestmark = pytest.mark.root

# A pod that answers every GET with its hostname; on SIGTERM it keeps serving for 2 s (its
# endpoint is withdrawn from the proxy in the meantime), as a Kubernetes app with a drain
# period would: tinykube has no preStop hooks.
SERVER = textwrap.dedent("""\
    import http.server, os, signal, socket, threading
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: one connection, many requests
        def do_GET(self):
            body = (socket.gethostname() + os.environ.get("VERSION", "")).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    signal.signal(signal.SIGTERM, lambda *a: threading.Timer(2, os._exit, [0]).start())
    http.server.ThreadingHTTPServer(("", 8080), H).serve_forever()
    """)

# Run inside a pod: N requests to URL, one connection each; prints {"answers": {...},
# "failures": [...]} as JSON.
CLIENT = textwrap.dedent("""\
    import collections, json, sys, urllib.request
    url, count = sys.argv[1], int(sys.argv[2])
    answers, failures = collections.Counter(), []
    for _ in range(count):
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                answers[r.read().decode()] += 1
        except Exception as e:
            failures.append(repr(e))
    print(json.dumps({"answers": answers, "failures": failures}))
    """)


def deployment(name="web", replicas=3, version="v1"):
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {
                     "terminationGracePeriodSeconds": 5,
                     "containers": [{
                         "name": "server", "command": ["python3", "-c", SERVER],
                         "env": [{"name": "VERSION", "value": f"/{version}"}],
                         "ports": [{"name": "http", "containerPort": 8080}],
                         "readinessProbe": {"httpGet": {"port": "http"}, "periodSeconds": 1},
                     }]}}}})


def service(name="web", **spec):
    body = {"selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}], **spec}
    return json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                       "spec": body})


def client_pod(name="client", labels=None):
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"role": "client"}},
        "spec": {"terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "command": ["sleep", "3600"]}]}})


def ready_addresses(daemon, service_name):
    slices = daemon.client.list("EndpointSlice", "default",
                                f"kubernetes.io/service-name={service_name}")
    return sorted(a for s in slices for e in s.get("endpoints") or []
                  if (e.get("conditions") or {}).get("ready")
                  for a in e["addresses"])


def requests_from(daemon, pod, url, count):
    done = daemon.exec(pod, "python3", "-c", CLIENT, url, str(count))
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def wait_endpoints(daemon, service_name, count):
    return wait_for(lambda: len(ready_addresses(daemon, service_name)) == count
                    and ready_addresses(daemon, service_name), timeout=60,
                    what=f"{count} ready endpoints of {service_name}")


def test_cluster_ip_spreads_over_every_ready_pod(daemon):
    daemon.apply(deployment())
    daemon.apply(service())
    daemon.apply(client_pod())
    daemon.wait_running("client")
    addresses = wait_endpoints(daemon, "web", 3)
    pods = {p["status"]["podIP"]: p["metadata"]["name"]
            for p in daemon.client.list("Pod", "default", "app=web")}
    assert set(addresses) == set(pods)
    svc = daemon.client.get("Service", "web")
    cluster_ip = svc["spec"]["clusterIP"]
    result = requests_from(daemon, "client", f"http://{cluster_ip}/", 1000)
    assert result["failures"] == []
    assert sum(result["answers"].values()) == 1000
    assert {a.split("/")[0] for a in result["answers"]} == set(pods.values())
    # The CLI shows what kubectl shows.
    listing = daemon.cli("get", "svc,endpointslices").stdout
    assert "service/web" in listing and cluster_ip in listing and "80/TCP" in listing
    assert re.search(r"^endpointslice\.discovery\.k8s\.io/web-\w{5}\s+IPv4\s+8080\s+", listing,
                     re.MULTILINE), listing
    described = daemon.cli("describe", "svc", "web").stdout
    endpoints_line = next(line for line in described.splitlines()
                          if line.startswith("Endpoints:"))
    shown = endpoints_line.split(None, 1)[1]
    assert shown.count(":8080") == 3 and "+" not in shown
    assert all(f"{ip}:8080" in shown for ip in pods)


# Run inside a pod: one DNS query straight to the pod's nameserver (no /etc/hosts, no search
# list), prints {"rcode": n, "ips": [...], "ms": [...]} for `count` repetitions.
DIG = textwrap.dedent("""\
    import json, random, socket, struct, sys, time
    name, qtype, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    server = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")][0]
    def ask():
        qid = random.randrange(65536)
        q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"".join(
            bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\\0"
        q += struct.pack("!HH", qtype, 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.sendto(q, (server, 53))
        data = s.recv(4096)
        s.close()
        i = 12
        while data[i]:
            i += data[i] + 1
        i += 5
        ips = []
        for _ in range(struct.unpack("!H", data[6:8])[0]):
            if data[i] & 0xC0 == 0xC0:
                i += 2
            else:
                while data[i]:
                    i += data[i] + 1
                i += 1
            rtype, _, _, length = struct.unpack("!HHIH", data[i:i + 10])
            i += 10
            if rtype == 1:
                ips.append(socket.inet_ntoa(data[i:i + 4]))
            i += length
        return data[3] & 15, sorted(ips)
    ms = []
    for _ in range(count):
        start = time.perf_counter()
        rcode, ips = ask()
        ms.append((time.perf_counter() - start) * 1000)
    print(json.dumps({"rcode": rcode, "ips": ips, "ms": ms}))
    """)


def dig(daemon, pod, name, qtype=1, count=1):
    done = daemon.exec(pod, "python3", "-c", DIG, name, str(qtype), str(count))
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def resolve(daemon, pod, name):
    """Through the pod's resolver (nsswitch: /etc/hosts, then DNS with the search list)."""
    done = daemon.exec(pod, "python3", "-c",
                       "import socket, sys; print(' '.join(sorted("
                       "socket.gethostbyname_ex(sys.argv[1])[2])))", name)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.split()


def test_rolling_update_under_load_loses_no_request(daemon):
    daemon.apply(deployment())
    daemon.apply(service())
    daemon.apply(client_pod())
    daemon.wait_running("client")
    wait_endpoints(daemon, "web", 3)
    cluster_ip = daemon.client.get("Service", "web")["spec"]["clusterIP"]
    # Requests until 300 in a row came from v2 pods (the rollout is over and every v1 pod
    # gone from the rules), at most 3 minutes.
    load = textwrap.dedent("""\
        import collections, json, sys, time, urllib.request
        answers, failures, streak, deadline = collections.Counter(), [], 0, time.time() + 180
        while streak < 300 and time.time() < deadline:
            try:
                with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
                    body = r.read().decode()
                answers[body.split("/")[1]] += 1
                streak = streak + 1 if body.endswith("/v2") else 0
            except Exception as e:
                failures.append(repr(e))
                streak = 0
        print(json.dumps({"answers": answers, "failures": failures, "streak": streak}))
        """)
    args = ["exec", "client", "--", "python3", "-c", load, f"http://{cluster_ip}/"]
    proc = subprocess.Popen([sys.executable, "-m", "tinykube.cli.main", "--socket",
                             str(daemon.socket), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)  # the load is running against v1
        daemon.apply(deployment(version="v2"))
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    result = json.loads(out)
    assert result["failures"] == [], err
    assert result["streak"] == 300 and result["answers"]["v1"] > 0
    # The last v1 pod may still be draining: only new pods remain once it is gone.
    wait_for(lambda: (pods := daemon.client.list("Pod", "default", "app=web")) and len(pods) == 3
             and all("/v2" in json.dumps(p["spec"]) for p in pods), timeout=60,
             what="three v2 pods")


def test_hairpin_a_pod_reaches_the_service_that_selects_it(daemon):
    daemon.apply(deployment(replicas=1))
    daemon.apply(service())
    (address,) = wait_endpoints(daemon, "web", 1)
    (pod,) = daemon.client.list("Pod", "default", "app=web")
    cluster_ip = daemon.client.get("Service", "web")["spec"]["clusterIP"]
    result = requests_from(daemon, pod["metadata"]["name"], f"http://{cluster_ip}/", 20)
    assert result["failures"] == []
    assert result["answers"] == {f"{pod['metadata']['name']}/v1": 20}
    assert address == pod["status"]["podIP"]


def test_node_port_from_the_host_and_rules_follow_endpoints(daemon):
    daemon.apply(deployment(replicas=2))
    daemon.apply(service(type="NodePort"))
    wait_endpoints(daemon, "web", 2)
    svc = daemon.client.get("Service", "web")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    gateway = str(ipaddress.ip_network(daemon.cidr)[1])
    names = {p["metadata"]["name"] for p in daemon.client.list("Pod", "default", "app=web")}
    for host in (gateway, "127.0.0.1"):
        seen = collections.Counter()
        for _ in range(40):
            with urllib.request.urlopen(f"http://{host}:{node_port}/", timeout=5) as r:
                seen[r.read().decode().split("/")[0]] += 1
        assert set(seen) == names, host
    assert f"{node_port}/TCP" in daemon.cli("get", "svc", "web").stdout
    # Scaled to zero: no endpoint, and the proxy refuses at once instead of timing out.
    daemon.cli("scale", "deployment", "web", "--replicas", "0")
    wait_for(lambda: ready_addresses(daemon, "web") == [], timeout=60, what="no endpoints")

    def refused():
        try:
            urllib.request.urlopen(f"http://{gateway}:{node_port}/", timeout=5)
        except urllib.error.URLError as e:
            return isinstance(e.reason, ConnectionRefusedError)
        return False
    wait_for(refused, timeout=30, what="connection refused without endpoints")
    table = subprocess.run(["nft", "list", "table", "ip", f"tinykube_{daemon.bridge}"],
                           capture_output=True, text=True, check=False)
    assert table.returncode == 0 and str(node_port) in table.stdout


WEB_YAML = textwrap.dedent("""\
    apiVersion: v1
    kind: Service
    metadata:
      name: nginx
      labels:
        app: nginx
    spec:
      ports:
      - port: 80
        name: web
      clusterIP: None
      selector:
        app: nginx
    ---
    apiVersion: apps/v1
    kind: StatefulSet
    metadata:
      name: web
    spec:
      serviceName: "nginx"
      replicas: 2
      selector:
        matchLabels:
          app: nginx
      template:
        metadata:
          labels:
            app: nginx
        spec:
          containers:
          - name: nginx
            command: ["python3", "-m", "http.server", "80", "--directory", "/usr/share/nginx/html"]
            ports:
            - containerPort: 80
              name: web
            volumeMounts:
            - name: www
              mountPath: /usr/share/nginx/html
      volumeClaimTemplates:
      - metadata:
          name: www
        spec:
          accessModes: [ "ReadWriteOnce" ]
          resources:
            requests:
              storage: 1Gi
    """)


def test_kubernetes_web_yaml_headless_service_and_statefulset_dns(daemon):
    daemon.apply(WEB_YAML)
    web0 = daemon.wait_ready("web-0", timeout=60)
    web1 = daemon.wait_ready("web-1", timeout=60)
    ips = sorted([web0["status"]["podIP"], web1["status"]["podIP"]])
    assert wait_endpoints(daemon, "nginx", 2) == ips
    (endpoint_slice,) = daemon.client.list("EndpointSlice", "default",
                                           "kubernetes.io/service-name=nginx")
    assert sorted(e["hostname"] for e in endpoint_slice["endpoints"]) == ["web-0", "web-1"]
    assert daemon.client.get("Service", "nginx")["spec"]["clusterIP"] == "None"
    for pod in ("web-0", "web-1"):
        # Through the pod's resolver: the search list makes `nginx` the headless set.
        assert resolve(daemon, pod, "nginx") == ips
        assert resolve(daemon, pod, "web-0.nginx") == [web0["status"]["podIP"]]
        # Straight from the DNS server (not /etc/hosts): each pod and the set.
        assert dig(daemon, pod, "web-1.nginx.default.svc.cluster.local")["ips"] == [
            web1["status"]["podIP"]]
        assert dig(daemon, pod, "nginx.default.svc.cluster.local")["ips"] == ips
    resolv = daemon.exec("web-0", "cat", "/etc/resolv.conf").stdout
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "options ndots:5" in resolv
    # Names outside the cluster are not sent anywhere by a test daemon: REFUSED (5).
    assert dig(daemon, "web-0", "example.com")["rcode"] == 5
    assert dig(daemon, "web-0", "nope.default.svc.cluster.local")["rcode"] == 3  # NXDOMAIN


def test_established_connections_survive_rule_updates_and_affinity_holds(daemon):
    daemon.apply(deployment(replicas=1))
    daemon.apply(service(type="NodePort", sessionAffinity="ClientIP"))
    wait_endpoints(daemon, "web", 1)
    svc = daemon.client.get("Service", "web")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    gateway = str(ipaddress.ip_network(daemon.cidr)[1])
    conn = http.client.HTTPConnection(gateway, node_port, timeout=5)
    try:
        conn.request("GET", "/")
        first = conn.getresponse().read().decode()
        sock = conn.sock
        # Endpoints change: the table is replaced several times while the connection is open.
        daemon.cli("scale", "deployment", "web", "--replicas", "3")
        wait_endpoints(daemon, "web", 3)
        for _ in range(5):
            conn.request("GET", "/")
            assert conn.getresponse().read().decode() == first
        assert conn.sock is sock  # the same connection, never re-opened
    finally:
        conn.close()
    # ClientIP affinity: every new connection from this client goes to one pod.
    daemon.apply(client_pod())
    daemon.wait_running("client")
    result = requests_from(daemon, "client", f"http://{svc['spec']['clusterIP']}/", 30)
    assert result["failures"] == [] and len(result["answers"]) == 1


def test_cluster_dns_over_tcp_and_forwarding_to_a_loopback_upstream(tmp_path):
    """Names outside the cluster go to the upstream as they came, here a stub on 127.0.0.1
    (never anything off the machine); cluster names are answered over TCP too."""
    import socket
    import threading

    import dns.message
    import dns.query
    import dns.rrset

    from tests.integration.daemon import Daemon

    stub = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stub.bind(("127.0.0.1", 0))
    stub.settimeout(0.5)
    asked: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                wire, peer = stub.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(wire)
            asked.append(query.question[0].name.to_text())
            response = dns.message.make_response(query)
            response.answer.append(dns.rrset.from_text(
                query.question[0].name, 30, "IN", "A", "192.0.2.7"))
            stub.sendto(response.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    daemon = Daemon(tmp_path)
    daemon.extra_args = ["--dns-upstream", f"127.0.0.1:{stub.getsockname()[1]}"]
    daemon.start()
    try:
        daemon.apply(service())
        daemon.apply(client_pod())
        daemon.wait_running("client")
        assert dig(daemon, "client", "example.test")["ips"] == ["192.0.2.7"]
        assert resolve(daemon, "client", "example.test") == ["192.0.2.7"]
        assert "example.test." in asked
        # TCP, from the host to the server on the bridge's address.
        gateway = str(ipaddress.ip_network(daemon.cidr)[1])
        response = dns.query.tcp(dns.message.make_query("web.default.svc.cluster.local", "A"),
                                 gateway, timeout=5)
        cluster_ip = daemon.client.get("Service", "web")["spec"]["clusterIP"]
        assert [r.address for r in response.answer[0]] == [cluster_ip]
    finally:
        stop.set()
        thread.join(timeout=5)
        stub.close()
        daemon.cleanup()


def test_kubectl_applies_web_yaml_and_shows_services_as_kubernetes_does(daemon, tmp_path):
    """kubectl v1.37 with default settings (server-side field validation against tinykube's
    OpenAPI): apply, get svc / endpointslices, describe svc (its Endpoints line)."""
    from tests.integration.kube import Kube

    kube = Kube(daemon, tmp_path)
    applied = kube.kubectl("apply", "-f", "-", input=WEB_YAML).stdout
    assert "service/nginx created" in applied and "statefulset.apps/web created" in applied
    daemon.wait_ready("web-0", timeout=60)
    web1 = daemon.wait_ready("web-1", timeout=60)
    wait_endpoints(daemon, "nginx", 2)
    services = kube.kubectl("get", "svc").stdout
    assert re.search(r"^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE$", services,
                     re.MULTILINE), services
    assert re.search(r"^nginx\s+ClusterIP\s+None\s+<none>\s+80/TCP\s+\S+$", services,
                     re.MULTILINE), services
    slices = kube.kubectl("get", "endpointslices").stdout
    assert re.search(r"^nginx-\w{5}\s+IPv4\s+80\s+\S+", slices, re.MULTILINE), slices
    assert web1["status"]["podIP"] in slices
    described = kube.kubectl("describe", "svc", "nginx").stdout
    line = next(x for x in described.splitlines() if x.startswith("Endpoints:"))
    assert f"{web1['status']['podIP']}:80" in line, described
    # Applying the same manifest again is no change (clusterIP None kept, nothing to patch).
    again = kube.kubectl("apply", "-f", "-", input=WEB_YAML).stdout
    assert "service/nginx unchanged" in again, again


def test_a_taken_dns_port_is_a_one_line_error(daemon):
    import socket

    daemon.stop()  # the bridge (and its address) stays, as after any stop
    gateway = str(ipaddress.ip_network(daemon.cidr)[1])
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind((gateway, 53))
    try:
        with pytest.raises(AssertionError, match="exited with 1") as failed:
            daemon.start()
        assert "cluster DNS: cannot listen on" in str(failed.value)
        assert "--no-cluster-dns" in str(failed.value) and "Traceback" not in str(failed.value)
    finally:
        squatter.close()
    daemon.start()  # free again: starts


def test_not_ready_published_and_terminating_endpoints_as_kubernetes_marks_them(daemon):
    def pod(name, ready):
        probe = {} if ready else {"readinessProbe": {"exec": {"command": ["false"]},
                                                     "periodSeconds": 1}}
        return json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "p"}},
            "spec": {"terminationGracePeriodSeconds": 30, "containers": [
                {"name": "c", "command": ["sleep", "3600"], **probe}]}})

    daemon.apply(pod("up", True))
    daemon.apply(pod("never", False))
    daemon.apply(client_pod())
    for name, publish in (("everyone", True), ("readyonly", False)):
        daemon.apply(json.dumps({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"clusterIP": "None", "selector": {"app": "p"},
                     "publishNotReadyAddresses": publish,
                     "ports": [{"name": "x", "port": 1}]}}))
    up = daemon.wait_ready("up")
    never = daemon.wait_running("never")
    daemon.wait_running("client")
    both = sorted([up["status"]["podIP"], never["status"]["podIP"]])
    wait_endpoints(daemon, "everyone", 2)
    assert dig(daemon, "client", "everyone.default.svc.cluster.local")["ips"] == both
    assert dig(daemon, "client", "readyonly.default.svc.cluster.local")["ips"] == [
        up["status"]["podIP"]]
    # Terminating (it ignores SIGTERM for up to 30 s): kept, serving, no longer ready.
    daemon.client.delete("Pod", "up", "default")

    def conditions():
        slices = daemon.client.list("EndpointSlice", "default",
                                    "kubernetes.io/service-name=readyonly")
        return next((e["conditions"] for s in slices for e in s.get("endpoints") or []
                     if e["targetRef"]["name"] == "up" and e["conditions"]["terminating"]),
                    None)
    assert wait_for(conditions, timeout=30, what="a terminating endpoint") == {
        "ready": False, "serving": True, "terminating": True}
    # The Service still exists: its name answers NOERROR without addresses.
    def answer():
        result = dig(daemon, "client", "readyonly.default.svc.cluster.local")
        return (result["rcode"], result["ips"])
    wait_for(lambda: answer() == (0, []), timeout=10, what="no address for readyonly")
