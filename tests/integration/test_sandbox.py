"""The pause sandbox against the real kernel: namespaces, cgroup, hostname, lifetime."""

import os
import subprocess
import sys
import uuid

import pytest
import trio

from tinykube.runtime import sandbox as sandbox_module
from tinykube.runtime.sandbox import Sandbox, SpawnError, sandbox_alive, start_sandbox, stop_sandbox
from tinykube.runtime.syscalls import proc_start_time

pytestmark = pytest.mark.root


@pytest.fixture
async def pods(cgroups):
    """Start sandboxes through ``pods.start(hostname)``; at the end every pause is gone and
    every pod cgroup removed."""
    started: list[Sandbox] = []

    class Pods:
        async def start(self, hostname="tk-pod"):
            uid = "tk" + uuid.uuid4().hex[:12]
            cgroups.create_pod(uid)
            sb = await start_sandbox(uid, hostname, cgroups)
            started.append(sb)
            return sb

    yield Pods()
    for sb in started:
        await stop_sandbox(sb)
        cgroups.kill_all(sb.uid)
        cgroups.remove(sb.uid)
        assert not sandbox_alive(sb)
        assert not os.path.exists(f"/proc/{sb.pause_pid}") or \
            proc_start_time(sb.pause_pid) != sb.start_time
        assert sb.uid not in cgroups.pod_uids()


def ns_id(pid, ns):
    return os.readlink(f"/proc/{pid}/ns/{ns}")


def rss_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1])


def sleeper():
    return subprocess.Popen(["sleep", "30"])


def comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


async def test_pause_in_new_namespaces_and_pod_cgroup(pods, cgroups):
    sb = await pods.start("web-0")
    assert sandbox_alive(sb)
    assert comm(sb.pause_pid) == "catatonit"
    # mnt too, since pods got their own /dev/shm (issue 15): a tmpfs in the pause's mount
    # namespace, which each container's mount namespace starts as a copy of.
    for ns in ("net", "uts", "ipc", "mnt"):
        assert ns_id(sb.pause_pid, ns) != ns_id(os.getpid(), ns)
    assert ns_id(sb.pause_pid, "pid") == ns_id(os.getpid(), "pid")
    assert cgroups.pids(sb.uid) == [sb.pause_pid]
    result = await trio.run_process(["nsenter", "-t", str(sb.pause_pid), "-u", "-n", "sh", "-c",
                                     "hostname; cat /sys/class/net/lo/operstate"],
                                    capture_stdout=True)
    out = result.stdout.decode().split()
    assert out[0] == "web-0"
    assert out[1] == "unknown"  # lo is up (loopback reports "unknown", down reports "down")
    assert os.uname().nodename != "web-0"


async def test_pause_has_its_own_session_and_is_tiny(pods):
    sb = await pods.start()
    assert os.getsid(sb.pause_pid) == sb.pause_pid  # survives the daemon's terminal/session
    rss_kb = rss_of(sb.pause_pid)
    print(f"\npause RSS: {rss_kb} kB")
    assert rss_kb < 4096


async def test_stop_is_idempotent(pods):
    sb = await pods.start()
    await stop_sandbox(sb)
    assert not sandbox_alive(sb)
    await stop_sandbox(sb)


async def test_stop_does_not_kill_a_reused_pid(pods):
    """A record whose start time does not match must not kill whatever now has the pid."""
    p = sleeper()
    try:
        stale = Sandbox(uid="tkstale", pause_pid=p.pid, start_time=proc_start_time(p.pid) - 1)
        assert not sandbox_alive(stale)
        await stop_sandbox(stale)
        assert p.poll() is None
    finally:
        p.kill()
        p.wait()


async def test_stop_works_for_a_pause_we_did_not_spawn(pods):
    """After a daemon restart the pause is not our child: kill + wait via pidfd still work."""
    sb = await pods.start()
    popen = sandbox_module._children.pop((sb.pause_pid, sb.start_time))
    with trio.fail_after(5):
        await stop_sandbox(sb)
    assert popen.wait() == -9


async def test_falls_back_to_sleep_without_catatonit(pods, monkeypatch):
    monkeypatch.setattr(sandbox_module, "PAUSE_COMMANDS",
                        (["tk-no-such-pause"], ["sleep", "infinity"]))
    sb = await pods.start()
    assert comm(sb.pause_pid) == "sleep"


async def test_setup_errors_carry_the_call_and_errno(cgroups):
    uid = "tk" + uuid.uuid4().hex[:12]
    cgroups.create_pod(uid)
    try:
        with pytest.raises(SpawnError, match=r"sethostname\(x{70}\): Invalid argument"):
            await start_sandbox(uid, "x" * 70, cgroups)
        assert cgroups.pids(uid) == []
    finally:
        cgroups.remove(uid)


DAEMON = """
import sys, trio
from tinykube.runtime.cgroups import detect
from tinykube.runtime.sandbox import start_sandbox

async def main():
    cgroups = detect(subtree=sys.argv[2])
    cgroups.create_pod(sys.argv[1])
    sb = await start_sandbox(sys.argv[1], "survivor", cgroups)
    print(sb.pause_pid, sb.start_time, flush=True)

trio.run(main)
"""


async def test_pause_survives_the_daemons_death(cgroups):
    """A short-lived 'daemon' starts a sandbox and exits; the pause lives on and a new
    daemon can stop it from the record (pid, start time) alone."""
    uid = "tk" + uuid.uuid4().hex[:12]
    result = await trio.run_process([sys.executable, "-c", DAEMON, uid, cgroups.subtree],
                                    capture_stdout=True,
                                    cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                                        os.path.abspath(__file__)))))
    pid, start_time = map(int, result.stdout.split())
    sb = Sandbox(uid=uid, pause_pid=pid, start_time=start_time)
    try:
        await trio.sleep(0.1)
        assert sandbox_alive(sb)
        assert cgroups.pids(uid) == [pid]
    finally:
        with trio.fail_after(5):
            await stop_sandbox(sb)
        cgroups.remove(uid)
    assert not sandbox_alive(sb)
