"""The pod network on the real kernel: bridge, veth pairs, pause processes' netns, IPAM.

Every test uses its own bridge `tkt<hex4>` and a free `10.201.<n>.0/24`, so it never meets
the daemon's `tk0`/10.88.0.0/16 or another test run. Pause processes are
`unshare --net --uts --ipc catatonit -P` (unshare execs catatonit: one pid to kill).
Traffic goes only between network namespaces the test made.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from tinykube.netns.errors import NetworkConfigError
from tinykube.netns.ipam import Ipam
from tinykube.netns.podnet import PodNetwork

pytestmark = pytest.mark.root

CATATONIT = "/usr/bin/catatonit"


# -- helpers ---------------------------------------------------------------------------------


def _link_names() -> set[str]:
    with IPRoute() as ipr:
        return {msg.get("ifname") for msg in ipr.link("dump")}


def _free_test_cidr(prefix: str = "10.201") -> str:
    """A /24 under 10.201/16 that no host route touches now."""
    with IPRoute() as ipr:
        used = [
            ipaddress.IPv4Network(f"{r.get('dst')}/{r['dst_len']}", strict=False)
            for r in ipr.route("dump", family=2)
            if r["dst_len"] > 0
        ]
    for _ in range(100):
        net = ipaddress.IPv4Network(f"{prefix}.{secrets.randbelow(256)}.0/24")
        if not any(net.overlaps(u) for u in used):
            return str(net)
    raise RuntimeError("no free 10.201.x.0/24 for the test")


def _in_pod(pid: int, *argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-n", *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
        **kwargs,
    )


def _pod_ip_json(pid: int, *argv: str) -> list[dict]:
    return json.loads(_in_pod(pid, "ip", "-j", *argv).stdout or "[]")


class Env:
    """What a test gets: a unique bridge and CIDR, a state dir, pause processes and uids
    that the fixtures clean up and check for leaks."""

    def __init__(self, tmp_path: Path) -> None:
        self.state_dir = tmp_path / "netstate"
        self.bridge = f"tkt{secrets.token_hex(2)}"
        self.cidr = _free_test_cidr()
        self.uids: list[str] = []
        self.pauses: list[subprocess.Popen] = []
        self.networks: list[PodNetwork] = []

    def network(self, bridge: str | None = None, cidr: str | None = None) -> PodNetwork:
        net = PodNetwork(self.state_dir, bridge=bridge or self.bridge, cidr=cidr or self.cidr)
        self.networks.append(net)
        return net

    def uid(self) -> str:
        uid = str(uuid.uuid4())
        self.uids.append(uid)
        return uid

    def pause(self) -> int:
        proc = subprocess.Popen(
            ["unshare", "--net", "--uts", "--ipc", CATATONIT, "-P"],
            stdin=subprocess.DEVNULL,
        )
        self.pauses.append(proc)
        host = os.stat("/proc/self/ns/net").st_ino
        deadline = time.monotonic() + 5
        while os.stat(f"/proc/{proc.pid}/ns/net").st_ino == host:  # until unshare has run
            assert time.monotonic() < deadline, "pause process never left the host netns"
            time.sleep(0.001)
        return proc.pid

    def kill_pause(self, pid: int) -> None:
        for proc in self.pauses:
            if proc.pid == pid and proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(autouse=True)
def env(tmp_path: Path) -> Iterator[Env]:
    """Cleans up after the test, then fails it if any of its links was left behind."""
    e = Env(tmp_path)
    yield e
    for proc in e.pauses:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
    for net in e.networks:
        net.close()
    # Whatever a test left, remove it so one failure does not leak into the host; the
    # leak check below still reports it.
    leftovers = _link_names() & ({e.bridge, e.bridge + "b"} | {f"tkv{u[:8]}" for u in e.uids})
    if leftovers:
        with IPRoute() as ipr:
            for name in leftovers:
                with contextlib.suppress(NetlinkError):  # gone with its peer or bridge
                    ipr.link("del", ifname=name)
    assert not leftovers, f"links left behind: {sorted(leftovers)}"


@pytest.fixture
async def net(env: Env):
    network = env.network()
    await network.ensure_bridge()
    yield network
    await network.teardown()


# -- tests -----------------------------------------------------------------------------------


async def test_two_pods_get_distinct_ips_and_talk_over_tcp(env: Env, net: PodNetwork):
    pid_a, pid_b = env.pause(), env.pause()
    a = await net.attach(env.uid(), pid_a)
    b = await net.attach(env.uid(), pid_b)
    assert a.ip != b.ip
    assert a.gateway == b.gateway == str(ipaddress.IPv4Network(env.cidr)[1])
    assert a.prefixlen == 24

    server_code = (
        "import socket; s = socket.socket(); s.bind(('0.0.0.0', 8080)); s.listen();"
        "print('ready', flush=True); c, peer = s.accept(); c.sendall(peer[0].encode());"
        "c.close()"
    )
    server = await trio.lowlevel.open_process(
        ["nsenter", "-t", str(pid_b), "-n", sys.executable, "-c", server_code],
        stdout=subprocess.PIPE,
    )
    try:
        with trio.fail_after(10):
            said = b""
            while not said.endswith(b"\n"):
                said += await server.stdout.receive_some()
        assert said == b"ready\n"
        client_code = (
            f"import socket; s = socket.create_connection(('{b.ip}', 8080), timeout=5);"
            "print(s.recv(100).decode())"
        )
        client = await trio.run_process(
            ["nsenter", "-t", str(pid_a), "-n", sys.executable, "-c", client_code],
            capture_stdout=True,
        )
        assert client.stdout.decode().strip() == a.ip  # B saw A's address: pod to pod
    finally:
        server.kill()
        await server.wait()
        await server.stdout.aclose()


async def test_pod_side_has_address_and_no_default_route(env: Env, net: PodNetwork):
    pid = env.pause()
    att = await net.attach(env.uid(), pid)

    (eth0,) = _pod_ip_json(pid, "-4", "addr", "show", "dev", "eth0")
    assert "UP" in eth0["flags"]
    assert [(i["local"], i["prefixlen"]) for i in eth0["addr_info"]] == [(att.ip, 24)]
    (lo,) = _pod_ip_json(pid, "link", "show", "dev", "lo")
    assert "UP" in lo["flags"]

    routes = _pod_ip_json(pid, "-4", "route", "show", "table", "all")
    assert not [r for r in routes if r["dst"] == "default"], routes
    main = [r for r in routes if r.get("table", "main") == "main"]
    assert [(r["dst"], r["dev"]) for r in main] == [(env.cidr, "eth0")]

    # Even a host that forwards would not route what pods send to the bridge.
    assert Path(f"/proc/sys/net/ipv4/conf/{env.bridge}/forwarding").read_text() == "0\n"
    assert Path(f"/proc/sys/net/ipv6/conf/{env.bridge}/disable_ipv6").read_text() == "1\n"

    with IPRoute() as ipr:
        (host_veth,) = ipr.link("get", ifname=att.host_veth)
        (bridge,) = ipr.link("get", ifname=env.bridge)
        assert host_veth.get("master") == bridge["index"]
        assert host_veth["flags"] & 1


async def test_attach_is_idempotent_and_repairs(env: Env, net: PodNetwork):
    pid, uid = env.pause(), env.uid()
    first = await net.attach(uid, pid)
    assert await net.attach(uid, pid) == first
    # A half-done earlier attempt: the address missing, eth0 and lo down.
    _in_pod(pid, "ip", "addr", "flush", "dev", "eth0")
    _in_pod(pid, "ip", "link", "set", "eth0", "down")
    _in_pod(pid, "ip", "link", "set", "lo", "down")
    assert await net.attach(uid, pid) == first
    (eth0,) = _pod_ip_json(pid, "-4", "addr", "show", "dev", "eth0")
    assert "UP" in eth0["flags"] and eth0["addr_info"][0]["local"] == first.ip
    assert "UP" in _pod_ip_json(pid, "link", "show", "dev", "lo")[0]["flags"]


async def test_attach_to_new_sandbox_replaces_the_stale_pair(env: Env, net: PodNetwork):
    uid = env.uid()
    old_pid, new_pid = env.pause(), env.pause()
    first = await net.attach(uid, old_pid)
    second = await net.attach(uid, new_pid)  # the pod got a new pause; the old one lingers
    assert second == first
    assert _pod_ip_json(new_pid, "-4", "addr", "show", "dev", "eth0")[0]["addr_info"]
    assert "eth0" not in {link["ifname"] for link in _pod_ip_json(old_pid, "link", "show")}


async def test_refuses_the_host_netns_and_missing_pause(env: Env, net: PodNetwork):
    with pytest.raises(NetworkConfigError, match="host's network namespace"):
        await net.attach(env.uid(), os.getpid())
    pid = env.pause()
    env.kill_pause(pid)
    with pytest.raises(NetworkConfigError, match=f"pause pid {pid}"):
        await net.attach(env.uid(), pid)


async def test_detach_is_idempotent_and_survives_a_dead_netns(env: Env, net: PodNetwork):
    pid, uid = env.pause(), env.uid()
    att = await net.attach(uid, pid)
    env.kill_pause(pid)  # the netns goes, and with it both veth ends (asynchronously)
    await net.detach(uid)
    await net.detach(uid)
    await net.detach(env.uid())  # never attached
    assert net.allocations() == {}
    assert att.host_veth not in _link_names()


async def test_fifty_pods_come_and_go_without_leftovers(env: Env, net: PodNetwork):
    pods = [(env.uid(), env.pause()) for _ in range(50)]
    ips = [(await net.attach(uid, pid)).ip for uid, pid in pods]
    assert len(set(ips)) == 50
    assert set(net.allocations()) == {uid for uid, _ in pods}
    for uid, _ in pods:
        await net.detach(uid)
    assert net.allocations() == {}
    names = _link_names()
    assert not [n for n in names if n in {f"tkv{uid[:8]}" for uid, _ in pods}]
    with IPRoute() as ipr:
        (bridge,) = ipr.link("get", ifname=env.bridge)
        ports = [m for m in ipr.link("dump") if m.get("master") == bridge["index"]]
    assert ports == []


async def test_concurrent_attaches_get_distinct_ips(env: Env, net: PodNetwork):
    pods = [(env.uid(), env.pause()) for _ in range(20)]
    results: dict[str, str] = {}

    async def attach(uid: str, pid: int) -> None:
        results[uid] = (await net.attach(uid, pid)).ip

    async with trio.open_nursery() as nursery:
        for uid, pid in pods:
            nursery.start_soon(attach, uid, pid)
    assert len(set(results.values())) == 20
    assert net.allocations() == results
    for uid, pid in pods:
        (eth0,) = _pod_ip_json(pid, "-4", "addr", "show", "dev", "eth0")
        assert eth0["addr_info"][0]["local"] == results[uid]


async def test_restart_keeps_allocations(env: Env, net: PodNetwork):
    pods = [(env.uid(), env.pause()) for _ in range(3)]
    before = {uid: (await net.attach(uid, pid)).ip for uid, pid in pods}
    net.close()

    again = env.network()  # a restarted daemon: same state dir, same bridge
    assert again.allocations() == before
    await again.ensure_bridge()  # our own bridge's route is not an overlap
    for uid, pid in pods:
        assert (await again.attach(uid, pid)).ip == before[uid]
    fresh = await again.attach(env.uid(), env.pause())
    assert fresh.ip not in before.values()


async def test_sweep_removes_orphan_veth_and_allocation(env: Env, net: PodNetwork):
    live_uid, orphan_uid = env.uid(), env.uid()
    live = await net.attach(live_uid, env.pause())
    orphan = await net.attach(orphan_uid, env.pause())
    net.close()
    # A daemon that recorded an address and died before making any link:
    lonely_uid = env.uid()
    Ipam(env.state_dir, env.cidr).allocate(lonely_uid)

    net = env.network()  # the restarted daemon sweeps what no live pod owns
    lines = await net.sweep({live_uid})
    assert any(orphan.host_veth in line for line in lines), lines
    assert any(orphan_uid in line for line in lines), lines
    assert any(lonely_uid in line for line in lines), lines
    assert len(lines) == 3
    assert net.allocations() == {live_uid: live.ip}
    names = _link_names()
    assert orphan.host_veth not in names and live.host_veth in names
    assert await net.sweep({live_uid}) == []


async def test_overlapping_cidr_is_refused(env: Env, net: PodNetwork):
    await net.ensure_bridge()  # again: idempotent
    inner = str(next(ipaddress.IPv4Network(env.cidr).subnets(new_prefix=25)))
    other = PodNetwork(env.state_dir / "other", bridge=env.bridge + "b", cidr=inner)
    env.networks.append(other)
    with pytest.raises(NetworkConfigError, match=f"cidr {inner}: overlaps host route") as e:
        await other.ensure_bridge()
    assert f"dev {env.bridge}" in str(e.value)  # the conflicting route's device, by name
    assert env.bridge + "b" not in _link_names()


async def test_teardown_removes_everything(env: Env):
    network = env.network()
    await network.ensure_bridge()
    att = await network.attach(env.uid(), env.pause())
    await network.teardown()
    await network.teardown()
    names = _link_names()
    assert env.bridge not in names and att.host_veth not in names
    assert not (env.state_dir / "ipam.json").exists()
    assert not (env.state_dir / "ipam.journal").exists()
