"""Services on a real daemon and the real kernel: EndpointSlices follow readiness, nftables
DNAT spreads connections over every ready pod, hairpin, NodePort from the host through the
bridge's address (and 127.0.0.1), no failed request through a readiness-gated rolling update,
and `reset` removes the proxy's table (checked by every daemon's cleanup, `assert_no_leaks`).

Traffic goes only to pod and service addresses inside this daemon's namespaces and to the
bridge's address / loopback on the host.
"""

from __future__ import annotations

import json
import textwrap

from tests.integration.daemon import wait_for

# A pod that answers every GET with its hostname; on SIGTERM it keeps serving for 2 s (its
# endpoint is withdrawn from the proxy in the meantime), as a Kubernetes app with a drain
# period would: tinykube has no preStop hooks.
SERVER = textwrap.dedent("""\
    import http.server, os, signal, socket, threading
    class H(http.server.BaseHTTPRequestHandler):
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
    described = daemon.cli("describe", "svc", "web").stdout
    endpoints_line = next(line for line in described.splitlines()
                          if line.startswith("Endpoints:"))
    shown = endpoints_line.split(None, 1)[1]
    assert shown.count(":8080") == 3 and "+" not in shown
    assert all(f"{ip}:8080" in shown for ip in pods)
