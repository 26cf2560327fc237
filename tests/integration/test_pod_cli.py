"""Pods through the daemon and the CLI: the runtime's Done-when items as a user sees them."""

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.daemon import container_pid, pod_cgroups, wait_for

pytestmark = pytest.mark.root

TWO = """
apiVersion: v1
kind: Pod
metadata: {name: duo}
spec:
  volumes: [{name: shared, emptyDir: {}}]
  containers:
    - name: server
      command: [python3, -c, "import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('127.0.0.1',7070));s.listen()\\nwhile True:\\n c,_=s.accept();c.sendall(b'pong');c.close()"]
      volumeMounts: [{name: shared, mountPath: /shared}]
    - name: writer
      command: [sh, -c, "echo from-writer > /shared/note; exec sleep infinity"]
      volumeMounts: [{name: shared, mountPath: /shared}]
"""

OTHER = """
apiVersion: v1
kind: Pod
metadata: {name: stranger}
spec:
  containers: [{name: c, command: [sleep, infinity]}]
"""

CONNECT = ("import socket;s=socket.create_connection(('127.0.0.1',7070),timeout=2);"
           "print(s.recv(10).decode())")


def test_two_containers_share_localhost_and_volumes_but_not_with_other_pods(daemon):
    hosts_before = Path("/etc/hosts").read_bytes()
    hostname_before = socket.gethostname()
    daemon.apply(TWO)
    daemon.apply(OTHER)
    daemon.wait_running("duo")
    daemon.wait_running("stranger")
    reached = wait_for(lambda: daemon.exec("duo", "python3", "-c", CONNECT,
                                           container="writer").stdout.strip() == "pong",
                       what="writer reaches server on 127.0.0.1")
    assert reached
    blocked = daemon.exec("stranger", "python3", "-c", CONNECT)
    assert blocked.returncode != 0 and "pong" not in blocked.stdout
    note = daemon.exec("duo", "cat", "/shared/note", container="server")
    assert note.stdout.strip() == "from-writer"
    assert daemon.exec("duo", "hostname", container="server").stdout.strip() == "duo"
    hosts = daemon.exec("duo", "cat", "/etc/hosts", container="server").stdout
    ip = daemon.pod("duo")["status"]["podIP"]
    assert f"{ip}\tduo" in hosts or f"{ip} duo" in hosts
    assert Path("/etc/hosts").read_bytes() == hosts_before
    assert socket.gethostname() == hostname_before
    assert not Path("/shared").exists()


CRASHER = """
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  restartPolicy: OnFailure
  containers:
    - name: c
      command: [sh, -c, "echo run-$(cat /proc/sys/kernel/random/uuid | cut -c1-8); echo line2; sleep 1; exit 3"]
"""


def test_logs_tail_previous_and_follow_across_a_restart(daemon):
    daemon.apply(CRASHER)
    first = daemon.wait_pod("crasher", lambda p: any(
        cs.get("restartCount", 0) >= 1 for cs in p["status"].get("containerStatuses", [])),
        timeout=40, what="first restart")
    cs = first["status"]["containerStatuses"][0]
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    previous = daemon.cli("logs", "crasher", "--previous").stdout
    assert previous.startswith("run-") and "line2" in previous
    tail = daemon.cli("logs", "crasher", "--previous", "--tail", "1").stdout
    assert tail == "line2\n"
    # Follow: keeps streaming across the next restart (a new log file).
    follower = subprocess.Popen(
        [sys.executable, "-m", "tinykube.cli.main", "--socket", str(daemon.socket), "logs",
         "-f", "crasher"], stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(follower.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: sum(1 for line in lines if line.startswith("run-")) >= 2,
                 timeout=60, what="logs -f to show two runs")
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    assert len({line for line in lines if line.startswith("run-")}) >= 2


def test_exec_streams_output_and_returns_the_exit_code(daemon):
    daemon.apply(TWO)
    daemon.wait_running("duo")
    result = daemon.exec("duo", "sh", "-c", "echo out; echo err >&2; exit 7",
                         container="writer")
    assert result.returncode == 7
    assert result.stdout == "out\n" and "err" in result.stderr
    ambiguous = daemon.exec("duo", "true")
    assert ambiguous.returncode == 1 and "container name must be specified" in ambiguous.stderr
    missing = daemon.exec("duo", "true", container="nope")
    assert missing.returncode == 1 and "not valid" in missing.stderr
    cgroup = daemon.exec("duo", "cat", "/proc/self/cgroup", container="writer").stdout
    assert daemon.cgroup_subtree in cgroup


GRACE = """
apiVersion: v1
kind: Pod
metadata: {name: NAME}
spec:
  terminationGracePeriodSeconds: 3
  containers:
    - name: c
      command: [sh, -c, "trap TRAP TERM; while true; do sleep 0.1; done"]
"""


@pytest.mark.parametrize("name, trap, lower, upper", [
    ("polite", "'echo bye; exit 0'", 0.0, 2.5),
    ("stubborn", "''", 2.5, 15.0),
])
def test_delete_honours_the_grace_period(daemon, name, trap, lower, upper):
    daemon.apply(GRACE.replace("NAME", name).replace("TRAP", trap))
    pod = daemon.wait_running(name)
    pid = container_pid(pod)
    uid = pod["metadata"]["uid"]
    time.sleep(0.5)  # let the shell install its trap
    start = time.monotonic()
    daemon.cli("delete", "pod", name)  # waits until the pod object is gone
    elapsed = time.monotonic() - start
    assert lower <= elapsed <= upper, elapsed
    assert not Path(f"/proc/{pid}").exists()
    assert not pod_cgroups({uid})
    assert not (daemon.root / "pods" / uid).exists()


PROBED = """
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  containers:
    - name: web
      command: [sleep, infinity]
      readinessProbe: {tcpSocket: {port: 9099}, periodSeconds: 1, failureThreshold: 1}
"""


def test_probe_failures_show_in_describe(daemon):
    daemon.apply(PROBED)
    daemon.wait_running("probed")
    wait_for(lambda: "Unhealthy" in daemon.cli("describe", "pod", "probed").stdout,
             timeout=20, what="Unhealthy event")
    out = daemon.cli("describe", "pod", "probed").stdout
    assert "Readiness probe failed" in out
    assert "0/1" in daemon.cli("get", "pods").stdout
