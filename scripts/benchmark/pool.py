"""The daemon's warm sandboxes as seen from the host (runtime/warmpool.py): which pauses the
pool holds, so a warm sample can wait for a full pool and then prove it got a pool sandbox."""

from __future__ import annotations

import json
import os
import time

from .daemon import SUBTREE, BenchDaemon

from tinykube.runtime.cgroups import detect
from tinykube.runtime.warmpool import DEFAULT_SIZE, is_pool_uid


def pauses(size: int = DEFAULT_SIZE) -> set[int] | None:
    """The pauses of the pool's members, once `size` members are whole (cgroup with its
    pause, veth on the host); None before."""
    cgroups = detect(None, subtree=SUBTREE)
    links = set(os.listdir("/sys/class/net"))
    found: set[int] = set()
    whole = 0
    for uid in cgroups.pod_uids():
        if is_pool_uid(uid):
            pids = cgroups.pids(uid)
            if pids and f"tkv{uid[:8]}" in links:
                whole += 1
                found.update(pids)
    return found if whole >= size else None


def wait_full(d: BenchDaemon, timeout: float = 30.0) -> set[int]:
    """Wait for a full pool (it refills in the background once no pod is starting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = pauses()
        if found is not None:
            return found
        time.sleep(0.01)  # the pool's refill has no event to watch from outside
    raise RuntimeError(f"the warm-sandbox pool of {d.base} did not fill within {timeout}s")


def pause_of(d: BenchDaemon, uid: str) -> int | None:
    try:
        record = json.loads((d.run_dir / "pods" / f"{uid}.json").read_text())
    except FileNotFoundError:
        return None
    return (record.get("pause") or {}).get("pid")
