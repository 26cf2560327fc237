"""Containers in a pod sandbox against the real kernel: shared network and volumes between
containers of one pod, isolation between pods, mounts invisible to the host, exit codes
recorded by tk-shim, signal forwarding, exec into a running container.

The mount planner's pure logic is tested first (no root needed)."""

import os
import signal
import subprocess
import sys
import uuid

import pytest
import trio

from tests.integration.daemon import POD_FILE_TARGETS, mount_snapshot, new_mount_points
from tinykube.runtime import sandbox as sandbox_module
from tinykube.runtime.cgroups import Limits
from tinykube.runtime.sandbox import SpawnError, start_sandbox, stop_sandbox
from tinykube.runtime.shim import build_shim
from tinykube.runtime.spawn import (
    EXIT_CODE_UNKNOWN,
    ContainerLaunch,
    ContainerProcess,
    Mount,
    exec_in_container,
    plan_mounts,
    read_exit_file,
    spawn_container,
    wait_exit,
)
from tinykube.runtime.syscalls import process_alive

NOWHERE = "/tk-nonexistent-xyz"


# -- mount plan (pure) ------------------------------------------------------------------------
def fake_fs(existing, dirs):
    return {"lexists": lambda p: p in existing, "isdir": lambda p: p in dirs,
            "realpath": lambda p: p, "mode_of": lambda p: 0o755,
            "scan": lambda p: [("etc", "dir", ""), ("bin", "link", "usr/bin")]}


def test_plan_binds_existing_targets_directly():
    fs = fake_fs({"/etc", "/etc/hosts"}, {"/src"})
    ops = plan_mounts([Mount("/pod/hosts", "/etc/hosts", readonly=True)], "/stage", **fs)
    assert ops == [("bind", "/pod/hosts", "/etc/hosts", True)]


def test_plan_new_top_level_target_reroots_once():
    fs = fake_fs({"/usr"}, {"/v1", "/v2", "/usr"})
    ops = plan_mounts([Mount("/v2", "/data/sub"), Mount("/v1", "/data")], "/stage", **fs)
    assert ops[0][:3] == ("reroot", "/stage", 0o755)
    assert ops[1:] == [("mkdir", "/data"), ("bind", "/v1", "/data", False),
                       ("mkdir", "/data/sub"), ("bind", "/v2", "/data/sub", False)]


def test_plan_deep_target_mirrors_deepest_existing_ancestor():
    fs = fake_fs({"/usr", "/usr/share"}, {"/usr", "/usr/share", "/v"})
    ops = plan_mounts([Mount("/v", "/usr/share/nginx/html")], "/stage", **fs)
    assert [op[:2] for op in ops] == [("mirror", "/usr/share"), ("mkdir", "/usr/share/nginx"),
                                      ("mkdir", "/usr/share/nginx/html"),
                                      ("bind", "/v")]


def test_plan_file_source_gets_a_file_mount_point():
    fs = fake_fs({"/etc"}, {"/etc"})
    ops = plan_mounts([Mount("/pod/token", "/etc/tk/token")], "/stage", **fs)
    assert ops[1:] == [("mkdir", "/etc/tk"), ("touch", "/etc/tk/token"),
                       ("bind", "/pod/token", "/etc/tk/token", False)]


def test_plan_puts_the_staging_entry_first():
    fs = fake_fs(set(), {"/v"})
    fs["scan"] = lambda p: [("etc", "dir", ""), ("tmp", "dir", ""), ("usr", "dir", "")]
    ops = plan_mounts([Mount("/v", "/data")], "/tmp/pod/logs/c", **fs)
    assert [e[0] for e in ops[0][3]] == ["tmp", "etc", "usr"]


def test_plan_rejects_relative_targets_and_root():
    with pytest.raises(SpawnError, match="absolute"):
        plan_mounts([Mount("/v", "data")], "/stage")
    with pytest.raises(SpawnError, match="cannot mount over /"):
        plan_mounts([Mount("/v", "/")], "/stage")


# -- real containers -----------------------------------------------------------------------------
class Pod:
    def __init__(self, tracker, sandbox, root):
        self.tracker, self.sandbox, self.root = tracker, sandbox, root
        self.uid = sandbox.uid
        self.restarts: dict[str, int] = {}

    def launch(self, name, argv, mounts=(), env=None, cwd=None, uid=None, gid=None):
        n = self.restarts.get(name, 0)
        self.restarts[name] = n + 1
        return ContainerLaunch(argv=list(argv), env=env or {}, cwd=cwd, uid=uid, gid=gid,
                               mounts=list(mounts), log_path=f"{self.root}/logs/{name}/{n}.log",
                               exit_file=f"{self.root}/exit/{name}.{n}")

    async def run(self, name, argv, **kwargs):
        """Start a container; returns (process, launch)."""
        launch = self.launch(name, argv, **kwargs)
        self.tracker.cgroups.create_container(self.uid, name, Limits())
        proc = await spawn_container(self.sandbox, self.tracker.cgroups, self.uid, name, launch)
        self.tracker.procs.append(proc)
        return proc, launch


class Tracker:
    def __init__(self, cgroups, tmp_path):
        self.cgroups, self.tmp_path = cgroups, tmp_path
        self.pods: list[Pod] = []
        self.procs: list[ContainerProcess] = []
        self.mounts_before = mount_snapshot()

    async def pod(self, hostname="tk-pod"):
        uid = "tk" + uuid.uuid4().hex[:12]
        root = self.tmp_path / uid
        root.mkdir()
        self.cgroups.create_pod(uid)
        pod = Pod(self, await start_sandbox(uid, hostname, self.cgroups), str(root))
        self.pods.append(pod)
        return pod

    async def cleanup(self):
        for proc in self.procs:
            if process_alive(proc.pid, proc.start_time):
                os.kill(proc.pid, signal.SIGKILL)
        for pod in self.pods:
            self.cgroups.kill_all(pod.uid)
        for proc in self.procs:
            with trio.fail_after(5):
                await wait_exit(proc)
            assert not process_alive(proc.pid, proc.start_time)
        for pod in self.pods:
            await stop_sandbox(pod.sandbox)
            self.cgroups.remove(pod.uid)
            assert pod.uid not in self.cgroups.pod_uids()
        assert not os.path.exists(NOWHERE)
        # The containers' mounts lived in their own mount namespaces: none reached the host.
        # (Against a snapshot: in a container, /etc/hosts & co. are mounts before any test.)
        points = new_mount_points(self.mounts_before)
        assert not [p for p in points if p.startswith((str(self.tmp_path), NOWHERE, "/usr/share"))
                    or p in (*POD_FILE_TARGETS, "/data")]


@pytest.fixture
async def pods(cgroups, tmp_path):
    tracker = Tracker(cgroups, tmp_path)
    try:
        yield tracker
    finally:
        await tracker.cleanup()


def read(path):
    with open(path) as f:
        return f.read()


async def wait_for_log(path, text, timeout=10):
    with trio.fail_after(timeout):
        while not (os.path.exists(path) and text in read(path)):
            await trio.sleep(0.01)


SERVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 8099)); s.listen(); print("listening", flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"hello from a"); c.close()
"""
CLIENT = """
import socket, sys
try:
    c = socket.create_connection(("127.0.0.1", 8099), timeout=3)
    print(c.recv(100).decode())
except OSError as e:
    print("failed:", type(e).__name__); sys.exit(7)
"""


@pytest.mark.root
async def test_containers_of_a_pod_share_localhost_other_pods_do_not(pods):
    pod = await pods.pod()
    _, server_launch = await pod.run("server", [sys.executable, "-c", SERVER])
    await wait_for_log(server_launch.log_path, "listening")

    client, launch = await pod.run("client", [sys.executable, "-c", CLIENT])
    assert await wait_exit(client) == 0
    assert read(launch.log_path).strip() == "hello from a"

    other = await pods.pod()
    outsider, launch = await other.run("client", [sys.executable, "-c", CLIENT])
    assert await wait_exit(outsider) == 7
    assert "failed: ConnectionRefusedError" in read(launch.log_path)


@pytest.mark.root
async def test_shared_volume_hostname_and_hosts_file(pods, tmp_path):
    pod = await pods.pod("web-0")
    shared = tmp_path / "shared"
    shared.mkdir()
    hosts = tmp_path / "hosts"
    hosts.write_text("10.77.0.5\tweb-0.tk-test\tweb-0\n")
    host_hosts = read("/etc/hosts")
    mounts = [Mount(str(shared), f"{NOWHERE}/data"), Mount(str(hosts), "/etc/hosts", True)]

    writer, _ = await pod.run("writer", ["sh", "-c", f"echo written-by-a > {NOWHERE}/data/msg"],
                              mounts=mounts)
    assert await wait_exit(writer) == 0
    script = f"hostname; cat {NOWHERE}/data/msg; cat /etc/hosts; echo x >> /etc/hosts || echo ro"
    reader, launch = await pod.run("reader", ["sh", "-c", script], mounts=mounts)
    assert await wait_exit(reader) == 0
    out = read(launch.log_path).splitlines()
    assert out[0] == "web-0"
    assert out[1] == "written-by-a"
    assert out[2] == "10.77.0.5\tweb-0.tk-test\tweb-0"
    assert out[-1] == "ro"  # readOnly mount
    assert (shared / "msg").read_text() == "written-by-a\n"
    assert not os.path.exists(NOWHERE)
    assert read("/etc/hosts") == host_hosts


@pytest.mark.root
async def test_deep_missing_target_under_existing_dir_leaves_host_alone(pods, tmp_path):
    pod = await pods.pod()
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text("<h1>tk</h1>\n")
    before = sorted(os.listdir("/usr/share"))
    script = ("cat /usr/share/nginx/html/index.html; ls /usr/share/doc | head -1;"
              " touch /usr/share/nginx/html/new")
    proc, launch = await pod.run("nginx", ["sh", "-c", script],
                                 mounts=[Mount(str(html), "/usr/share/nginx/html")])
    assert await wait_exit(proc) == 0
    out = read(launch.log_path).splitlines()
    assert out[0] == "<h1>tk</h1>"
    assert out[1] == min(os.listdir("/usr/share/doc"))  # siblings still the host's
    assert (html / "new").exists()
    assert sorted(os.listdir("/usr/share")) == before


@pytest.mark.root
async def test_env_cwd_and_user(pods, tmp_path):
    pod = await pods.pod()
    work = tmp_path / "work"
    work.mkdir()
    os.chmod(work, 0o777)
    proc, launch = await pod.run(
        "app", ["sh", "-c", "echo $GREETING; echo $PATH; pwd; id -u; id -g; env | wc -l"],
        env={"GREETING": "hi"}, cwd="/data", uid=1000, gid=1000,
        mounts=[Mount(str(work), "/data")])
    assert await wait_exit(proc) == 0
    out = read(launch.log_path).split()
    assert out[0] == "hi"
    assert out[1] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert out[2:5] == ["/data", "1000", "1000"]
    assert int(out[5]) <= 4  # GREETING, PATH, PWD (+ sh's own) - nothing of the daemon's


@pytest.mark.root
async def test_exit_codes_are_recorded_by_the_shim(pods):
    pod = await pods.pod()
    proc, launch = await pod.run("three", ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert await wait_exit(proc) == 3
    assert read_exit_file(launch.exit_file) == 3
    assert read(launch.log_path) == "out\nerr\n"

    proc, launch = await pod.run("missing", ["tk-no-such-command"])
    assert await wait_exit(proc) == 127
    assert "tk-no-such-command" in read(launch.log_path)


def app_pid(shim_pid):
    with open(f"/proc/{shim_pid}/task/{shim_pid}/children") as f:
        return int(f.read().split()[0])


@pytest.mark.root
async def test_app_killed_by_sigkill_is_137(pods):
    pod = await pods.pod()
    proc, launch = await pod.run("sleeper", ["sh", "-c", "echo ready; exec sleep 30"])
    await wait_for_log(launch.log_path, "ready")
    os.kill(app_pid(proc.pid), signal.SIGKILL)
    assert await wait_exit(proc) == 137
    assert read(launch.exit_file) == "137\n"


@pytest.mark.root
async def test_sigterm_is_forwarded_to_the_app(pods):
    pod = await pods.pod()
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(42))\n"
            "print('ready', flush=True)\ntime.sleep(30)\n")
    proc, launch = await pod.run("graceful", [sys.executable, "-c", code])
    await wait_for_log(launch.log_path, "ready")
    os.kill(proc.pid, signal.SIGTERM)
    with trio.fail_after(5):
        assert await wait_exit(proc) == 42


@pytest.mark.root
async def test_wait_exit_for_a_process_the_daemon_did_not_spawn(pods):
    """After a restart the daemon can't reap the shim: the pidfd + exit file still work."""
    pod = await pods.pod()
    proc, _ = await pod.run("adopted", ["sh", "-c", "sleep 0.3; exit 5"])
    popen = sandbox_module._children.pop((proc.pid, proc.start_time))  # "forget" our child
    with trio.fail_after(5):
        assert await wait_exit(proc) == 5
    popen.wait()

    proc, _ = await pod.run("killed", ["sleep", "30"])
    popen = sandbox_module._children.pop((proc.pid, proc.start_time))
    os.kill(proc.pid, signal.SIGKILL)  # the shim itself dies: nobody writes an exit file
    with trio.fail_after(5):
        assert await wait_exit(proc) == EXIT_CODE_UNKNOWN
    popen.wait()


@pytest.mark.root
async def test_exec_in_container_sees_its_hostname_mounts_and_cgroup(pods, cgroups, tmp_path):
    pod = await pods.pod("db-1")
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "data.txt").write_text("inside")
    proc, _ = await pod.run("db", ["sleep", "30"], mounts=[Mount(str(vol), f"{NOWHERE}/v")])
    script = f"hostname; cat {NOWHERE}/v/data.txt; echo; cat /proc/self/cgroup; read l; echo $l"
    p = await exec_in_container(pod.sandbox, proc, ["sh", "-c", script],
                                cgroups=cgroups, pod_uid=pod.uid, name="db")
    try:
        await p.stdin.send_all(b"streamed\n")
        out = b""
        with trio.fail_after(5):
            while chunk := await p.stdout.receive_some():
                out += chunk
            assert await p.wait() == 0
    finally:
        p.kill()
        await p.wait()
        for stream in (p.stdin, p.stdout, p.stderr):
            await stream.aclose()
    lines = out.decode().splitlines()
    assert lines[0] == "db-1"
    assert lines[1] == "inside"
    hierarchy = ":memory:" if cgroups.version == 1 else "0::"  # v2: the one unified line
    assert any(line.endswith(f"/{cgroups.subtree}/pod-{pod.uid}/db") and hierarchy in line
               for line in lines)
    assert lines[-1] == "streamed"
    assert not os.path.exists(NOWHERE)


@pytest.mark.root
async def test_exec_errors_are_clear(pods, cgroups):
    pod = await pods.pod()
    proc, _ = await pod.run("app", ["sleep", "30"])
    with pytest.raises(SpawnError, match="tk-no-such-command"):
        await exec_in_container(pod.sandbox, proc, ["tk-no-such-command"], cgroups=cgroups,
                                pod_uid=pod.uid, name="app")
    with pytest.raises(SpawnError, match=r"chdir|No such file"):
        await exec_in_container(pod.sandbox, proc, ["true"], cgroups=cgroups, pod_uid=pod.uid,
                                name="app", cwd="/tk-no-such-dir")


@pytest.mark.root
async def test_spawn_into_a_dead_sandbox_fails_clearly(pods):
    pod = await pods.pod()
    await stop_sandbox(pod.sandbox)
    with pytest.raises(SpawnError, match="pause"):
        await pod.run("late", ["true"])


@pytest.mark.root
def test_shim_builds_and_records_exit_codes(tmp_path):
    """tk-shim on its own (no root needed): build from source, exit code, 127, usage."""
    shim = str(build_shim(tmp_path / "tk-shim"))
    exit_file = tmp_path / "exit"

    def shim_run(*argv):
        return subprocess.run([shim, *argv], check=False, capture_output=True, text=True)

    assert shim_run(str(exit_file), "--", "sh", "-c", "exit 3").returncode == 3
    assert exit_file.read_text() == "3\n"
    done = shim_run(str(exit_file), "--", "tk-no-such-command")
    assert done.returncode == 127 and "tk-no-such-command" in done.stderr
    assert exit_file.read_text() == "127\n"
    assert shim_run(str(exit_file)).returncode == 125  # usage error
    assert [p.name for p in tmp_path.iterdir() if ".tmp." in p.name] == []


@pytest.mark.root
def test_pod_files_over_paths_that_are_mounts_already(tmp_path):
    # Inside any container /etc/hosts, /etc/hostname and /etc/resolv.conf are bind mounts the
    # container runtime made. Recreate that in a private mount namespace (the host's files
    # stay untouched) and run the hosts-file test there: the pod's file must land on top of
    # the existing mount, and the leak check must not take the runtime's mounts for ours.
    script = "".join(f'cp {f} {tmp_path}/{os.path.basename(f)}; '
                     f'mount --bind {tmp_path}/{os.path.basename(f)} {f}; '
                     for f in POD_FILE_TARGETS if os.path.exists(f))
    script += 'exec "$@"'
    test = f"{__file__}::test_shared_volume_hostname_and_hosts_file"
    result = subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", sys.executable,
                             "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
