"""netns/rawlink.dump_links against the kernel and pyroute2: the raw link dump (used to list
pod veths at every daemon start and sweep) sees what pyroute2's full decode sees.

It runs in a network namespace of its own (`ip netns`), with a bridge and enough veth pairs
that the dump spans many netlink reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (ip netns)")

PAIRS = 150  # 300 links: several recv()s of a dump

COMPARE = """
import json
from pyroute2 import IPRoute
from tinykube.netns import links, rawlink

with rawlink.open_socket() as sock:
    raw = {name: [i.index, i.kind, i.master, i.up] for name, i in rawlink.dump_links(sock)}
with IPRoute() as ipr:
    full = {m.get("ifname"): [m["index"], m.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"),
                              m.get("master"), bool(m["flags"] & 1)] for m in ipr.link("dump")}
    veths = sorted(link.name for link in links.list_veths(ipr))
print(json.dumps({"raw": raw, "full": full, "veths": veths}))
"""


@pytest.fixture
def netns():
    name = f"tkt-raw-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_raw_dump_matches_pyroute2_on_hundreds_of_links(netns):
    batch = ["link add tkrawbr type bridge", "link set tkrawbr up"]
    for i in range(PAIRS):
        batch.append(f"link add tkv{i:08d} type veth peer name tkp{i:08d}")
        if i % 2 == 0:
            batch += [f"link set tkv{i:08d} master tkrawbr", f"link set tkv{i:08d} up"]
    subprocess.run(["ip", "-n", netns, "-batch", "-"], input="\n".join(batch) + "\n",
                   text=True, check=True)
    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", COMPARE],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["raw"] == result["full"]
    assert len(result["raw"]) == 2 * PAIRS + 2  # the pairs, the bridge, lo
    bridge = result["raw"]["tkrawbr"]
    assert bridge[1] == "bridge" and result["raw"]["tkv00000000"][2] == bridge[0]
    assert result["raw"]["tkv00000001"][2] is None and result["raw"]["lo"][1] is None
    # list_veths: the tkv ends only (not their tkp peers, not the bridge)
    assert result["veths"] == [f"tkv{i:08d}" for i in range(PAIRS)]
