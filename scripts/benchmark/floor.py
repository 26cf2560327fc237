"""The floor: the kernel work of a pod start done by the shell tools alone.

`ip link add` of a veth pair plus `unshare --net --uts --ipc --fork true` (new namespaces,
a fork and an exec of the command), each a fresh process as a shell script would run them.
tinykube's pod start is reported as a ratio to this. The pair is deleted after the timing.
"""

from __future__ import annotations

import subprocess
import time


def floor_once(index: int) -> float:
    host, peer = f"tkbf{index}a", f"tkbf{index}b"
    start = time.monotonic()
    subprocess.run(["ip", "link", "add", host, "type", "veth", "peer", "name", peer], check=True)
    subprocess.run(["unshare", "--net", "--uts", "--ipc", "--fork", "true"], check=True)
    elapsed = time.monotonic() - start
    subprocess.run(["ip", "link", "del", host], check=True)
    return elapsed


def floor_samples(repeat: int) -> list[float]:
    floor_once(0)  # warm-up: page cache for ip and unshare
    return [floor_once(i) for i in range(repeat)]
