"""The pytest plugin (tinykube.testing.plugin): its fixture object's verbs against a real
daemon, the async variants under pytest-trio, and, in an inner pytest run, the marker, the
failure report and the teardown leaving nothing behind. (examples/pytest is the user-facing
suite; scripts/test-pytest-example runs it from a wheel in a fresh virtualenv.)"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tinykube.model.errors import ApiError
from tinykube.testing import wait_for

POD = """
apiVersion: v1
kind: Pod
metadata: {name: echo, labels: {app: echo}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      command: ["python3", "-u", "-m", "http.server", "8080", "--directory", "/etc"]
      readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
"""


@pytest.fixture
def echo(tinykube):
    tinykube.apply(POD)
    yield tinykube.wait("pod/echo", timeout=60)
    tinykube.delete("pod/echo")


def test_verbs_against_a_real_pod(tinykube, echo):
    assert echo["status"]["podIP"] == tinykube.pod_ip("echo")
    assert tinykube.get("pods", selector="app=echo")[0]["metadata"]["name"] == "echo"
    response = tinykube.http_get("echo", 8080, "/hostname")
    assert (response.status, response.text) == (200, "echo\n")
    code, output = tinykube.exec("pod/echo", "echo out; echo err >&2; exit 7")
    assert code == 7  # output: both streams (two pipes, so in either order)
    assert sorted(output.splitlines()) == ["err", "out"]
    assert "Serving HTTP on 0.0.0.0 port 8080" in tinykube.logs("echo", container="main")
    assert any(e["reason"] == "Started" and e["involvedObject"]["name"] == "echo"
               for e in tinykube.events())
    assert "Name:" in tinykube.describe("pod/echo")


def test_apply_rejects_a_bad_manifest_naming_the_field(tinykube):
    with pytest.raises(ApiError, match="spec.containers: Required value"):
        tinykube.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"},
                        "spec": {"containers": []}})
    assert tinykube.get("pods", namespace="*") == []  # nothing was created


def test_official_client_reaches_the_daemon(tinykube, echo):
    from kubernetes import client

    pod = client.CoreV1Api(tinykube.client).read_namespaced_pod("echo", "default")
    assert pod.status.pod_ip == tinykube.pod_ip("echo")


async def test_async_verbs_under_trio(tinykube, echo):
    response = await tinykube.aio.http_get("echo", 8080, "/hostname")
    assert response.text == "echo\n"
    assert (await tinykube.aio.exec("echo", ["true"])).exit_code == 0


def test_async_verbs_under_asyncio(tinykube, echo):
    """The same coroutines on asyncio (what anyio's asyncio backend runs)."""
    import asyncio

    async def main():
        return await tinykube.aio.pod_ip("echo"), await tinykube.aio.logs("echo")

    ip, log = asyncio.run(main())
    assert ip == echo["status"]["podIP"] and "Serving HTTP" in log


INNER = '''
import pytest

POD = """{pod}"""
NEVER_READY = POD.replace("name: echo", "name: never").replace(
    "tcpSocket: {{port: 8080}}", "tcpSocket: {{port: 9}}")

@pytest.mark.tinykube(manifests=[POD])
def test_marker_applied_and_ready(tinykube):
    assert tinykube.get("pod/echo")["status"]["phase"] == "Running"

def test_fails_with_a_report(tinykube):
    tinykube.apply(NEVER_READY)
    tinykube.wait("pod/never", timeout=3)
'''


def test_marker_report_and_teardown_in_an_inner_run(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER).format(pod=POD))
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                             "--basetemp", str(tmp_path / "base"),
                             str(tmp_path / "test_inner.py")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    out = result.stdout + result.stderr
    # "1 failed, 1 passed, 1 error" if the session teardown (reset --purge, the leak check)
    # had failed.
    assert "1 failed, 1 passed in " in out, out
    assert "timed out after 3s waiting for Pod/never condition=Ready" in out, out
    for section in ("tinykube daemon log (last lines)", "tinykube not Ready objects",
                    "tinykube recent events"):
        assert section in out, out
    assert "Name:" in out and "never" in out  # describe of the pod that is not Ready
    assert "Readiness probe failed" in out  # its events


HANGING = '''
import json, time

POD = """{pod}"""

def test_hangs_until_interrupted(tinykube):
    tinykube.apply(POD)
    pod = tinykube.wait("pod/echo", timeout=120)
    pid = int(pod["status"]["containerStatuses"][0]["containerID"].split("://")[1])
    with open({ready!r}, "w") as f:
        json.dump({{"pid": pid}}, f)
    time.sleep(600)
'''


def _host_resources(tag: str, root: str) -> list[str]:
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    found = [line.split(":")[1].strip() for line in links.splitlines()
             if f": tkd{tag}" in line]
    for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(dirpath, d) for d in dirnames
                  if d.startswith(f"tinykube-test-{tag}")]
        dirnames[:] = [] if dirpath.count("/") >= 4 else dirnames  # subtrees sit at the top
    with open("/proc/self/mountinfo") as f:
        found += [line.split()[4] for line in f if root in line.split()[4]]
    return found


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_leaves_nothing_behind(tmp_path, sig):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    tag = "iq"  # ini tinykube_name_tag: names the inner run's bridge and cgroups
    ready = tmp_path / "ready.json"
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_hang.py").write_text(
        textwrap.dedent(HANGING).format(pod=POD, ready=str(ready)))
    inner = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                              "-o", f"tinykube_name_tag={tag}",
                              "--basetemp", str(tmp_path / "base"), str(tmp_path / "test_hang.py")],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        wait_for(lambda: ready.exists() or inner.poll() is not None, timeout=240,
                 what="the inner test's pod Ready")
        assert inner.poll() is None, inner.communicate()[0]
        pod_pid = json.loads(ready.read_text())["pid"]
        assert _host_resources(tag, str(tmp_path)), "the inner daemon's bridge should be up"
        inner.send_signal(sig)
        out = inner.communicate(timeout=180)[0]
    finally:
        if inner.poll() is None:
            inner.kill()
            inner.wait()
    assert "Interrupted" in out or "KeyboardInterrupt" in out, out
    assert "cleanup at exit failed" not in out, out
    assert not _host_resources(tag, str(tmp_path)), out
    assert not os.path.exists(f"/proc/{pod_pid}"), f"the pod's process {pod_pid} is still running"


@pytest.mark.root
def test_cleanup_after_a_start_that_never_answered_still_resets(tmp_path):
    """A daemon process whose socket never came up (a start that timed out on a loaded
    machine): cleanup stops it and resets the host instead of raising DaemonUnreachable,
    which skipped the reset (leaking the bridge, cgroups, nft table) and hid the start's
    error."""
    from tinykube.testing.daemon import Daemon

    daemon = Daemon(tmp_path)
    daemon.process = subprocess.Popen(["sleep", "60"])
    daemon.cleanup()
    assert daemon.process.poll() is not None, "the process was not stopped"
