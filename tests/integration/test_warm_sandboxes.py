"""Warm sandboxes (runtime/warmpool.py) on a real daemon: a pod that gets one has its own
hostname, address, cgroup with its limits and files; a clean stop, a restart after kill -9
and `reset` leave no pool member behind; `--warm-sandboxes 0` (the default) starts every pod
cold.

A pod is known to have got a warm sandbox when its pause (named by its record) is a process
that ran in a pool member's cgroup before the pod was created."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon, container_pid, wait_for
from tinykube.netns.ipamlog import recorded_allocations
from tinykube.runtime.cgroups import detect
from tinykube.runtime.warmpool import DEFAULT_SIZE, is_pool_uid
from tinykube.testing.lifecycle import running

pytestmark = pytest.mark.root


@pytest.fixture
def daemon(tmp_path):
    """A daemon with a pool of DEFAULT_SIZE warm sandboxes (a daemon has none by default)."""
    d = Daemon(tmp_path)
    d.extra_args = ["--warm-sandboxes", str(DEFAULT_SIZE)]
    with running(d) as started:
        yield started


def pod(name: str) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    command: [sleep, infinity]
    resources: {{limits: {{memory: 48Mi, cpu: 250m}}}}
"""


def allocations(daemon: Daemon) -> dict[str, str]:
    return recorded_allocations(daemon.root / "network")


def links() -> str:
    return subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                          check=True).stdout


def pool(daemon: Daemon) -> dict[str, tuple[list[int], str | None]]:
    """{member uid: (processes in its cgroup, its address)} of every pool member on the host."""
    cgroups = detect(None, subtree=daemon.cgroup_subtree)
    addresses = allocations(daemon)
    return {uid: (cgroups.pids(uid), addresses.get(uid))
            for uid in cgroups.pod_uids() if is_pool_uid(uid)}


def full_pool(daemon: Daemon) -> dict[str, tuple[list[int], str | None]]:
    """Wait until the pool holds its default size, each member with a pause, an address and
    its veth."""
    def ready() -> dict | None:
        members = pool(daemon)
        names = links()
        whole = {uid: m for uid, m in members.items()
                 if m[0] and m[1] and f"tkv{uid[:8]}" in names}
        return whole if len(whole) == DEFAULT_SIZE else None
    return wait_for(ready, timeout=30, what=f"{DEFAULT_SIZE} warm sandboxes")


def no_pool_left(daemon: Daemon) -> list[str]:
    """What of any pool member is still on the host (cgroups, links, addresses)."""
    found = [f"cgroup pod-{uid}" for uid in pool(daemon)]
    found += [line for line in links().splitlines() if ": tkvw-" in line
              and daemon.bridge in line]
    found += [f"address of {uid}" for uid in allocations(daemon) if is_pool_uid(uid)]
    return found


def alive(pid: int) -> bool:
    """Running (a zombie has stopped; only its parent, maybe this test, can reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def pause_of(daemon: Daemon, uid: str) -> int:
    record = json.loads((daemon.run_dir / "pods" / f"{uid}.json").read_text())
    return record["pause"]["pid"]


def memory_limit(daemon: Daemon, uid: str, container: str) -> int:
    for path in detect(None, subtree=daemon.cgroup_subtree).dirs(uid, container):
        for name in ("memory.limit_in_bytes", "memory.max"):
            if os.path.exists(os.path.join(path, name)):
                return int(Path(path, name).read_text())
    raise AssertionError(f"no memory limit file for {uid}/{container}")


def test_pods_from_the_pool_get_their_own_hostname_address_cgroup_and_files(daemon: Daemon):
    before = full_pool(daemon)
    pool_pauses = {pid: (uid, ip) for uid, (pids, ip) in before.items() for pid in pids}
    daemon.apply(pod("warm-a") + "---" + pod("warm-b"))
    pods = {name: daemon.wait_running(name) for name in ("warm-a", "warm-b")}

    seen_ips, claimed = set(), set()
    for name, obj in pods.items():
        uid, ip = obj["metadata"]["uid"], obj["status"]["podIP"]
        pause = pause_of(daemon, uid)
        assert pause in pool_pauses, f"{name}: its pause {pause} was not a warm sandbox's"
        member, member_ip = pool_pauses[pause]
        claimed.add(member)
        # The member's address is now the pod's, under the pod's uid only.
        assert ip == member_ip and allocations(daemon).get(uid) == ip
        assert member not in allocations(daemon)
        seen_ips.add(ip)
        # Its cgroup, veth and hostname are the pod's.
        cgroups = detect(None, subtree=daemon.cgroup_subtree)
        assert pause in cgroups.pids(uid) and member not in cgroups.pod_uids()
        assert f"tkv{uid[:8]}" in links() and f"tkv{member[:8]}" not in links()
        assert daemon.exec(name, "hostname").stdout.strip() == name
        hosts = daemon.exec(name, "cat", "/etc/hosts").stdout
        assert f"{ip}\t{name}" in hosts or f"{ip} {name}" in hosts, hosts
        assert daemon.exec(name, "cat", "/etc/hostname").stdout.strip() == name
        # eth0 inside carries the address; the container sits in its limited cgroup.
        inside = subprocess.run(["nsenter", "-t", str(pause), "-n", "ip", "-4", "-o", "addr",
                                 "show", "eth0"], capture_output=True, text=True,
                                check=True).stdout
        assert f"{ip}/" in inside
        app = container_pid(obj)
        assert f"pod-{uid}/c" in Path(f"/proc/{app}/cgroup").read_text()
        assert memory_limit(daemon, uid, "c") == 48 * 1024 * 1024
    assert len(seen_ips) == 2 and len(claimed) == 2

    # The pool refills with new members once no pod is starting.
    assert not set(full_pool(daemon)) & claimed

    # A pod from the pool is re-adopted like any other after kill -9 of the daemon; the old
    # pool members are discarded by the next start, which builds new ones.
    apps = {name: container_pid(obj) for name, obj in pods.items()}
    daemon.stop(signal.SIGKILL)
    stale = pool(daemon)
    stale_pauses = [pid for pids, _ in stale.values() for pid in pids]
    assert stale and stale_pauses
    daemon.start()
    for name in pods:
        assert container_pid(daemon.wait_running(name)) == apps[name]
    wait_for(lambda: not set(pool(daemon)) & set(stale), timeout=30,
             what="the previous daemon's warm sandboxes discarded")
    wait_for(lambda: not [p for p in stale_pauses if alive(p)], timeout=10,
             what="their pauses gone")
    full_pool(daemon)
    assert f"discarding warm sandbox {next(iter(stale))}" in daemon.log_path.read_text()


def test_a_clean_stop_and_reset_leave_no_pool_member(daemon: Daemon):
    full_pool(daemon)
    daemon.stop(signal.SIGTERM)
    assert no_pool_left(daemon) == []

    daemon.start()
    members = full_pool(daemon)
    pauses = [pid for pids, _ in members.values() for pid in pids]
    daemon.stop(signal.SIGKILL)
    assert pool(daemon)  # left running by the killed daemon
    daemon.cli("reset", "--root", str(daemon.root), "--run-dir", str(daemon.run_dir),
               "--bridge", daemon.bridge, "--pod-cidr", daemon.cidr, "--cgroup-subtree",
               daemon.cgroup_subtree)
    assert no_pool_left(daemon) == []
    assert not [p for p in pauses if alive(p)]


def test_no_pool_every_pod_starts_cold(daemon: Daemon):
    daemon.stop(signal.SIGTERM)
    daemon.extra_args = []  # the default: no pool
    daemon.start()
    daemon.apply(pod("cold"))
    obj = daemon.wait_running("cold")
    uid = obj["metadata"]["uid"]
    assert daemon.exec("cold", "hostname").stdout.strip() == "cold"
    assert allocations(daemon) == {uid: obj["status"]["podIP"]}
    assert pool(daemon) == {}
