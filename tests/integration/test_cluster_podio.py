"""Logs and exec of pods that agents run, through the server: 1 server, 2 agents. The server
sends `pods/log` and `pods/exec` on to the agent of the pod's node (its endpoint at the Node's
InternalIP and daemonEndpoints port), as kube-apiserver does to the kubelet; the agent admits
only clients holding a certificate the cluster's CA signed. `tinykube logs` (with --tail and
-f), `tinykube exec`, and kubectl's logs and exec (WebSocket) for a pod on each agent."""

from __future__ import annotations

import os
import queue
import ssl
import subprocess
import sys
import threading
import uuid

import httpx
import pytest

from tests.integration.clusternet import running_cluster, tk
from tests.integration.kube import kubectl_binary
from tinykube.testing.daemon import wait_for

pytestmark = pytest.mark.root

POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    command: [sh, -c, 'trap "exit 0" TERM; for i in 1 2 3 4 5; do echo {name}-$i; done;
              while [ ! -e {flag} ]; do sleep 0.1; done; echo {name}-after-exec;
              while :; do sleep 0.1; done']
"""


@pytest.fixture
def cluster(tmp_path):
    with running_cluster(tmp_path) as c:
        yield c


class Follower:
    """A streaming command (`logs -f`) whose output lines are read as they come."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, wanted: str, timeout: float = 30) -> list[str]:
        seen = []
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"{wanted!r} not streamed; saw {seen}") from None
            seen.append(line)
            if line == wanted:
                return seen

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def test_logs_and_exec_of_pods_on_each_agent_go_through_the_server(cluster, tmp_path):
    agents = [cluster.add_agent(), cluster.add_agent()]
    kubeconfig = tmp_path / "admin.kubeconfig"
    kubeconfig.write_text(tk(cluster, "kubeconfig").stdout)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path),
           "KUBECACHEDIR": str(tmp_path / "kubecache")}
    flags = {}
    for agent in agents:
        name = f"p-{agent.name}"
        flags[name] = f"/tmp/tk-go-{uuid.uuid4().hex}"
        tk(cluster, "apply", "-f", "-", input=POD.format(name=name, node=agent.name,
                                                         flag=flags[name]))
    for agent in agents:
        name = f"p-{agent.name}"
        wait_for(lambda name=name: f"{name}-5\n" in tk(cluster, "logs", name,
                                                         check=False).stdout, timeout=60, what=f"{name}'s first lines in its log")
        # The whole log, and its tail, come from the agent that runs the pod.
        assert tk(cluster, "logs", name).stdout == "".join(f"{name}-{i}\n" for i in range(1, 6))
        assert tk(cluster, "logs", name, "--tail", "2").stdout == f"{name}-4\n{name}-5\n"
        follow = Follower([sys.executable, "-m", "tinykube.cli.main", "--socket",
                           str(cluster.socket_of(1)), "logs", "-f", name])
        try:
            assert follow.until(f"{name}-5") == [f"{name}-{i}" for i in range(1, 6)]
            # exec on the agent: output and exit code come back; the pod then logs a line
            # that the follower (still connected through the server) receives.
            done = tk(cluster, "exec", name, "--", "sh", "-c",
                      f"touch {flags[name]}; echo out-$(hostname); echo err >&2; exit 3",
                      check=False)
            assert (done.returncode, done.stdout, done.stderr) == (3, f"out-{name}\n", "err\n")
            assert follow.until(f"{name}-after-exec") == [f"{name}-after-exec"]
        finally:
            follow.stop()
        # kubectl: logs over HTTPS, exec over its WebSocket protocol, both through the server.
        kubectl = subprocess.run([kubectl_binary(), "logs", name, "--tail=1"], env=env,
                                 capture_output=True, text=True, timeout=60)
        assert kubectl.stdout == f"{name}-after-exec\n", kubectl.stderr
        kubectl = subprocess.run([kubectl_binary(), "exec", "-i", name, "--", "sh", "-c",
                                  "cat; echo on-$(hostname); exit 4"], env=env,
                                 input="from-stdin\n", capture_output=True, text=True,
                                 timeout=60)
        assert (kubectl.returncode, kubectl.stdout) == (4, f"from-stdin\non-{name}\n"), \
            kubectl.stderr
    # A bad container name is refused by the server before it goes anywhere.
    bad = tk(cluster, "logs", f"p-{agents[0].name}", "-c", "nope", check=False)
    assert bad.returncode != 0 and "container nope is not valid" in bad.stderr


def test_the_agent_endpoint_admits_only_the_servers_certificate_and_its_own_pods(cluster):
    a, b = cluster.add_agent(), cluster.add_agent()
    tk(cluster, "apply", "-f", "-", input=POD.format(name="on-a", node=a.name,
                                                      flag="/nonexistent/never"))
    wait_for(lambda: cluster.client.get("Pod", "on-a", "default").get("status", {}).get(
        "phase") == "Running", timeout=60, what="on-a Running")

    def endpoint(agent) -> str:
        status = cluster.client.get("Node", agent.name, "default")["status"]
        (ip,) = [x["address"] for x in status["addresses"] if x["type"] == "InternalIP"]
        return f"https://{ip}:{status['daemonEndpoints']['kubeletEndpoint']['Port']}"

    path = "/api/v1/namespaces/default/pods/on-a/log"
    # Without a client certificate from the cluster's CA: the TLS handshake fails.
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    with pytest.raises(httpx.HTTPError):
        httpx.get(endpoint(a) + path, verify=insecure, timeout=10)
    # With the servers' certificate: the pod's log from a, and 404 from b (not its pod).
    pki = cluster.root / "pki"
    server = ssl.create_default_context()
    server.check_hostname, server.verify_mode = False, ssl.CERT_NONE
    server.load_cert_chain(str(pki / "kubelet-client.crt"), str(pki / "kubelet-client.key"))
    response = httpx.get(endpoint(a) + path, verify=server, timeout=10)
    assert response.status_code == 200 and response.text.startswith("on-a-1\n")
    other = httpx.get(endpoint(b) + path, verify=server, timeout=10)
    assert other.status_code == 404 and f"not running on node {b.name}" in other.text
    # Only logs and exec: the agent serves no other part of the API.
    listing = httpx.get(endpoint(a) + "/api/v1/namespaces/default/pods", verify=server,
                        timeout=10)
    assert listing.status_code == 404
