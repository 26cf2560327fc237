"""The kubelet for real: a real Store (temp dir), real Kubelet, real namespaces, cgroups, veths.

No API server: the tests write Pods to the store and read back their status, as the API
server would. Host resources are test-only: bridge `tktkl0`, 10.202.50.0/24, cgroups under
`/tktkl` in each hierarchy (not the daemon's `tinykube` subtree, so a test never sweeps
another test's pods). Every test checks nothing leaked: no process, cgroup, veth, pod dir.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from tinykube.netns.podnet import PodNetwork
from tinykube.runtime.backoff import BackoffPolicy
from tinykube.runtime.cgroups import detect
from tinykube.runtime.kubelet import Kubelet
from tinykube.store import Store

pytestmark = pytest.mark.root

BRIDGE = "tktkl0"
CIDR = "10.202.50.0/24"
CGROUP_PARENT = "/tktkl"
FAST_BACKOFF = BackoffPolicy(initial=0.2, cap=0.8, reset_after=600)


class Node:
    def __init__(self, tmp: Path, store: Store, kubelet: Kubelet, network: PodNetwork,
                 cgroups: Any) -> None:
        self.tmp, self.store, self.kubelet = tmp, store, kubelet
        self.network, self.cgroups = network, cgroups

    async def create(self, name: str, containers: list[dict], **spec: Any) -> dict:
        # A short grace unless a test sets one: `sh -c "sleep 1000"` is PID 1 of its
        # container and, as under Kubernetes, ignores SIGTERM, so a stop takes the grace.
        spec.setdefault("terminationGracePeriodSeconds", 2)
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "default"},
               "spec": {"containers": containers, **spec}}
        return await self.store.create(pod)

    async def wait_for(self, name: str, predicate: Callable[[dict | None], bool],
                       timeout: float = 15, what: str = "") -> dict | None:
        """Wait until predicate(pod or None) holds (polled: logs change without events)."""
        with trio.move_on_after(timeout) as scope:
            while True:
                pod = self.store.try_get("Pod", "default", name)
                if predicate(pod):
                    return pod
                await trio.sleep(0.05)
        assert not scope.cancelled_caught, (
            f"timed out waiting for {what or predicate} on pod {name}: "
            f"{self.store.try_get('Pod', 'default', name)}")
        return None

    async def wait_phase(self, name: str, phase: str, timeout: float = 15) -> dict:
        pod = await self.wait_for(name, lambda p: bool(p) and p.get("status", {}).get("phase")
                                  == phase, timeout, f"phase {phase}")
        assert pod is not None
        return pod

    async def delete_and_wait(self, name: str, timeout: float = 15, **kw: Any) -> float:
        start = time.monotonic()
        await self.store.delete("Pod", "default", name, **kw)
        await self.wait_for(name, lambda p: p is None, timeout, "removal")
        return time.monotonic() - start

    async def start_kubelet(self) -> None:
        self.kubelet = Kubelet(self.store, self.tmp, self.tmp / "run", self.network,
                               self.cgroups, backoff_policy=FAST_BACKOFF)
        self.scope = trio.CancelScope()
        kubelet, scope = self.kubelet, self.scope

        async def run_kubelet(task_status=trio.TASK_STATUS_IGNORED):
            with scope:
                await kubelet.run(task_status=task_status)

        await self.nursery.start(run_kubelet)

    def stop_kubelet(self) -> None:
        """Like stopping the daemon: supervision ends, the pods' processes keep running."""
        self.scope.cancel()
        self.kubelet = None  # type: ignore[assignment]

    def log(self, pod: dict, container: str, previous: bool = False) -> str:
        path = self.kubelet.log_path(pod, container, previous)
        return path.read_text() if path and path.exists() else ""

    def events(self, name: str) -> list[tuple[str, str]]:
        return [(e["reason"], e["message"]) for e in self.store.events("default")
                if e["involvedObject"]["name"] == name]


def container_status(pod: dict, name: str) -> dict:
    return next(c for c in pod["status"]["containerStatuses"] if c["name"] == name)


def condition(pod: dict | None, kind: str) -> str | None:
    conditions = ((pod or {}).get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == kind), None)


def assert_pod_gone_from_host(node: Node, uid: str, pause_pid: int | None = None) -> None:
    assert node.cgroups.pids(uid) == []
    assert not any(os.path.exists(d) for d in node.cgroups.dirs(uid)), "pod cgroup left"
    assert not os.path.exists(f"/sys/class/net/tkv{uid[:8]}"), "veth left"
    assert not (node.tmp / "pods" / uid).exists(), "pod dir left"
    assert not (node.tmp / "run" / "pods" / f"{uid}.json").exists(), "record left"
    with open("/proc/self/mountinfo") as f:
        assert uid not in f.read(), "mount left"
    if pause_pid is not None:
        assert not os.path.exists(f"/proc/{pause_pid}"), "pause process left (or a zombie)"


@pytest.fixture
async def node(tmp_path: Path, nursery: trio.Nursery):
    store = Store(tmp_path / "state.db")
    network = PodNetwork(tmp_path / "network", bridge=BRIDGE, cidr=CIDR)
    # A subtree of our own: a concurrent run (another checkout, CI) must not sweep our pods.
    cgroups = detect(CGROUP_PARENT, subtree=f"tinykube-kl{os.getpid()}")
    helper = Node(tmp_path, store, None, network, cgroups)  # type: ignore[arg-type]
    helper.nursery = nursery
    await helper.start_kubelet()
    try:
        yield helper
    finally:
        if helper.kubelet is None:
            await helper.start_kubelet()
        # Force-delete what a test left; the workers tear it down; then check nothing leaked.
        uids = [p["metadata"]["uid"] for p in store.list("Pod")]
        for pod in store.list("Pod"):
            await store.delete("Pod", "default", pod["metadata"]["name"], grace_period=0)
        with trio.move_on_after(10):
            while helper.kubelet.workers:
                await trio.sleep(0.05)
        helper.stop_kubelet()
        leftover = {uid for uid in uids if cgroups.pids(uid)}
        cgroups.remove_all()
        for directory in cgroups.roots.values():
            try:
                os.rmdir(directory)
            except OSError:
                pass
        await network.teardown()
        network.close()
        store.close()
        assert not leftover, f"processes left in pods {leftover}"


def first_child(pid: int) -> int:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return int(f.read().split()[0])


def sh(script: str, name: str = "main", **extra: Any) -> dict:
    return {"name": name, "command": ["sh", "-c", script], **extra}


async def test_two_containers_share_localhost_emptydir_and_hostname(node: Node):
    fetch = ("import time, urllib.request\n"
             "for _ in range(100):\n"
             "    try:\n"
             "        print(urllib.request.urlopen('http://127.0.0.1:8080/hello').read().decode())\n"
             "        break\n"
             "    except OSError:\n"
             "        time.sleep(0.1)\n")
    pod = await node.create("duo", [
        {"name": "web", "command": ["python3", "-m", "http.server", "8080", "--bind",
                                    "127.0.0.1", "--directory", "/data"],
         "volumeMounts": [{"name": "shared", "mountPath": "/data"}]},
        sh("echo from-client > /out/hello; hostname; cat /etc/hostname; "
           "echo ns=$MY_NS name=$MY_NAME ip=$MY_IP; python3 -c \"$FETCH\"; sleep 1000",
           name="client", volumeMounts=[{"name": "shared", "mountPath": "/out"}],
           env=[{"name": "FETCH", "value": fetch},
                {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]),
    ], hostname="myhost", volumes=[{"name": "shared", "emptyDir": {}}])
    pod = await node.wait_for("duo", lambda p: "from-client" in node.log(p, "client"), 15,
                              "the client to fetch the file over localhost")
    assert pod is not None
    ip = pod["status"]["podIP"]
    assert ip.startswith("10.202.50.") and pod["status"]["hostIP"] == "10.202.50.1"
    log = node.log(pod, "client")
    assert log.splitlines()[:3] == ["myhost", "myhost", f"ns=default name=duo ip={ip}"]
    assert (node.tmp / "pods" / pod["metadata"]["uid"] / "volumes" / "shared" / "hello").exists()
    pod = await node.wait_for("duo", lambda p: condition(p, "Ready") == "True", 5, "Ready")
    assert pod["status"]["phase"] == "Running"
    assert {r for r, _ in node.events("duo")} >= {"Created", "Started"}


async def test_oom_killed_with_a_20mi_limit(node: Node):
    pod = await node.create("oom", [{
        "name": "hog", "command": ["python3", "-c", "x = bytearray(200 * 1024 * 1024)"],
        "resources": {"limits": {"memory": "20Mi"}}}], restartPolicy="Never")
    pod = await node.wait_phase("oom", "Failed")
    term = container_status(pod, "hog")["state"]["terminated"]
    assert term["reason"] == "OOMKilled" and term["exitCode"] == 137


async def test_cpu_limit_holds_a_busy_loop(node: Node):
    # Two busy loops in one pod, measured over the same window: one limited to 200m, one
    # not. On a shared, loaded machine an absolute rate says little about the limit (the
    # unlimited loop may get as little), so the limited loop is judged against its twin.
    loop = "while :; do :; done"
    pod = await node.create("busy", [sh(loop, "spin", resources={"limits": {"cpu": "200m"}}),
                                     sh(loop, "free")])
    pod = await node.wait_phase("busy", "Running")
    uid = pod["metadata"]["uid"]
    await trio.sleep(0.5)

    def throttled(name: str) -> int:
        """CFS periods in which the container hit its quota (cpu.stat, v1 and v2 alike)."""
        for directory in node.cgroups.dirs(uid, name):
            stat = Path(directory, "cpu.stat")
            if stat.exists():
                return int(dict(line.split() for line in stat.read_text().splitlines())
                           .get("nr_throttled", 0))
        raise AssertionError(f"no cpu.stat for container {name}")

    def usage() -> dict[str, tuple[int, int]]:
        return {n: (node.cgroups.cpu_usage_ns(uid, n), throttled(n)) for n in ("spin", "free")}

    before, t0 = usage(), time.monotonic()
    await trio.sleep(3)
    after, seconds = usage(), time.monotonic() - t0
    limited, free = ((after[n][0] - before[n][0]) / 1e9 / seconds for n in ("spin", "free"))
    print(f"200m-limited loop: {limited:.3f} CPU, unlimited twin: {free:.3f} CPU, "
          f"ratio {limited / free:.2f}")
    assert 0 < limited <= 0.2 * 1.25  # the quota is a cap whatever the load
    # The kernel held the limited loop back and never the other (load-independent evidence).
    assert after["spin"][1] > before["spin"][1] and after["free"][1] == before["free"][1] == 0
    if free >= 0.2 * 2:  # the machine had room: without the limit the twins share ~equally
        assert limited / free < 0.75


@pytest.mark.parametrize("policy,code,phase,restarts", [
    ("Never", 3, "Failed", False),
    ("Never", 0, "Succeeded", False),
    ("OnFailure", 0, "Succeeded", False),
    ("OnFailure", 4, "Running", True),
    ("Always", 0, "Running", True),
])
async def test_restart_policies(node: Node, policy: str, code: int, phase: str,
                                restarts: bool):
    await node.create("rp", [sh(f"echo run; exit {code}", "job")], restartPolicy=policy)
    if not restarts:
        pod = await node.wait_phase("rp", phase)
        cs = container_status(pod, "job")
        assert cs["restartCount"] == 0
        assert cs["state"]["terminated"]["exitCode"] == code
        assert cs["state"]["terminated"]["reason"] == ("Completed" if code == 0 else "Error")
        assert condition(pod, "Ready") == "False"
        return
    pod = await node.wait_for("rp", lambda p: bool(p) and bool(p.get("status"))
                              and container_status(p, "job")["restartCount"] >= 3, 15,
                              "3 restarts")
    cs = container_status(pod, "job")
    assert pod["status"]["phase"] == phase
    last = cs["lastState"]["terminated"]
    assert last["exitCode"] == code and last["reason"] == ("Completed" if code == 0 else "Error")
    await node.wait_for("rp", lambda p: "CrashLoopBackOff" in str(
        container_status(p, "job")["state"]), 5, "CrashLoopBackOff")
    assert "BackOff" in {r for r, _ in node.events("rp")}
    # Each run logs to its own file; `previous` is the run before the current one.
    pod = node.store.get("Pod", "default", "rp")
    assert node.log(pod, "job", previous=True) == "run\n"


async def test_graceful_delete_lets_a_trapping_process_exit(node: Node):
    pod = await node.create("polite", [sh(
        "trap 'echo got-term; exit 0' TERM; echo up; while :; do sleep 0.1; done")],
        terminationGracePeriodSeconds=10)
    pod = await node.wait_for("polite", lambda p: "up" in node.log(p, "main"), 10, "start")
    uid, log_path = pod["metadata"]["uid"], node.kubelet.log_path(pod, "main")
    assert log_path is not None
    pause_pid = node.kubelet.workers[uid].live.pause.pause_pid
    # The pod dir goes with the pod: keep the log open to read it afterwards.
    async with await trio.open_file(log_path) as log_file:
        took = await node.delete_and_wait("polite")
        assert took < 3, f"a process that exits on SIGTERM took {took:.1f}s to stop"
        assert "got-term" in await log_file.read()
    assert_pod_gone_from_host(node, uid, pause_pid)


async def test_graceful_delete_kills_a_process_that_ignores_sigterm(node: Node):
    pod = await node.create("stubborn", [sh(
        "trap '' TERM; echo up; while :; do sleep 0.1; done")],
        terminationGracePeriodSeconds=2)
    pod = await node.wait_for("stubborn", lambda p: "up" in node.log(p, "main"), 10, "start")
    uid = pod["metadata"]["uid"]
    pause_pid = node.kubelet.workers[uid].live.pause.pause_pid
    took = await node.delete_and_wait("stubborn")
    assert 2 <= took < 4.5, f"SIGKILL after a 2 s grace took {took:.1f}s"
    assert_pod_gone_from_host(node, uid, pause_pid)


async def test_subdomain_peers_see_each_other(node: Node):
    for i in range(2):
        await node.create(f"web-{i}", [sh("sleep 1000")], hostname=f"web-{i}", subdomain="svc")
    pods = [await node.wait_phase(f"web-{i}", "Running") for i in range(2)]
    hosts = [node.tmp / "pods" / p["metadata"]["uid"] / "etc-hosts" for p in pods]
    ip1 = pods[1]["status"]["podIP"]
    await node.wait_for("web-0", lambda p: ip1 in hosts[0].read_text(), 5, "peer in hosts")
    assert f"{ip1}\tweb-1.svc.default.svc.cluster.local\tweb-1.svc\tweb-1" in \
        hosts[0].read_text()
    inode = hosts[0].stat().st_ino
    await node.delete_and_wait("web-1")
    await node.wait_for("web-0", lambda p: ip1 not in hosts[0].read_text(), 5, "peer removed")
    assert hosts[0].stat().st_ino == inode, "hosts must be rewritten in place (bind mount)"


async def test_host_port_is_free_while_probes_reach_the_pod(node: Node):
    port = 18089
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the host must have nothing on the port"


async def test_pause_death_fails_the_pod(node: Node):
    """Under restartPolicy Never (Always and OnFailure get a new sandbox instead:
    tests/integration/test_pod_lifecycle.py)."""
    pod = await node.create("fragile", [sh("sleep 1000")], restartPolicy="Never")
    pod = await node.wait_phase("fragile", "Running")
    uid = pod["metadata"]["uid"]
    os.kill(node.kubelet.workers[uid].live.pause.pause_pid, 9)
    pod = await node.wait_phase("fragile", "Failed")
    assert pod["status"]["reason"] == "SandboxDied"
    # The status comes first; the pod's processes and veth go right after.
    await node.wait_for("fragile", lambda p: not node.cgroups.pids(uid)
                        and not os.path.exists(f"/sys/class/net/tkv{uid[:8]}"), 5, "release")
    await node.delete_and_wait("fragile")
    assert_pod_gone_from_host(node, uid)


async def test_restart_readopts_running_pods_and_reads_exit_files(node: Node):
    await node.create("keeper", [sh("echo up; sleep 1000", "app")])
    await node.create("quitter", [sh("sleep 1; exit 7", "job")], restartPolicy="Never")
    keeper = await node.wait_phase("keeper", "Running")
    await node.wait_phase("quitter", "Running")
    uid = keeper["metadata"]["uid"]
    container_id = container_status(keeper, "app")["containerID"]
    pause_pid = node.kubelet.workers[uid].live.pause.pause_pid
    node.stop_kubelet()
    await trio.sleep(1.5)  # "quitter" exits while no kubelet watches
    await node.start_kubelet()
    quitter = await node.wait_phase("quitter", "Failed")
    assert container_status(quitter, "job")["state"]["terminated"]["exitCode"] == 7
    keeper = node.store.get("Pod", "default", "keeper")
    assert container_status(keeper, "app")["containerID"] == container_id
    # Re-adoption verifies the pod's veth before the worker holds its sandbox again: wait
    # for that (a loaded machine finishes "quitter" first), then check it is the same pause.
    await node.wait_for("keeper", lambda p: node.kubelet.workers[uid].live is not None, 15,
                        "keeper's sandbox re-adopted")
    assert node.kubelet.workers[uid].live.pause.pause_pid == pause_pid
    # The re-adopted container is supervised: killing its app restarts it.
    shim = int(container_id.removeprefix("tinykube://"))
    app = first_child(shim)
    os.kill(app, 9)
    keeper = await node.wait_for("keeper", lambda p: container_status(p, "app")["restartCount"]
                                 == 1, 10, "a restart")
    assert container_status(keeper, "app")["lastState"]["terminated"]["exitCode"] == 137
    await node.delete_and_wait("keeper", grace_period=1)
    assert_pod_gone_from_host(node, uid, pause_pid)


async def test_restart_removes_pods_deleted_while_down(node: Node):
    pod = await node.create("orphan", [sh("sleep 1000")])
    pod = await node.wait_phase("orphan", "Running")
    uid = pod["metadata"]["uid"]
    node.stop_kubelet()
    await node.store.delete("Pod", "default", "orphan", grace_period=0)
    await node.start_kubelet()  # restore runs before start returns
    assert_pod_gone_from_host(node, uid)


async def test_claim_volume_outlives_the_pod_and_run_as_user(node: Node):
    await node.store.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                             "metadata": {"name": "data-0", "namespace": "default"},
                             "spec": {"accessModes": ["ReadWriteOnce"],
                                      "resources": {"requests": {"storage": "1Mi"}}}})
    await node.create("claimer", [sh("id -u; id -g; echo kept > /data/file", "app",
                                     volumeMounts=[{"name": "d", "mountPath": "/data"}],
                                     securityContext={"runAsUser": 0})],
                      restartPolicy="Never", securityContext={"runAsUser": 1000,
                                                              "runAsGroup": 1000},
                      volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data-0"}}])
    pod = await node.wait_phase("claimer", "Succeeded")
    assert node.log(pod, "app").split()[:2] == ["0", "1000"]  # container overrides the pod
    uid = pod["metadata"]["uid"]
    await node.delete_and_wait("claimer")
    assert (node.tmp / "volumes" / "default" / "data-0" / "file").read_text() == "kept\n"
    assert_pod_gone_from_host(node, uid)
