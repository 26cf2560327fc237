"""What the host says about the daemon and the pods: memory, CPU time, pidfds, cgroups, links.

Read from /proc and /sys only (never from the daemon), so the figures do not depend on the
thing being measured. Memory per process is given as RSS and as PSS (proportional set size:
shared pages divided among the processes sharing them), the honest figure for "what one more
pod costs" since every pause maps the same catatonit pages.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .daemon import BRIDGE, SUBTREE

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def pss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def pidfd_count(pid: int) -> int:
    """Open pidfds of the process: the daemon holds one per supervised pause and container."""
    count = 0
    fd_dir = f"/proc/{pid}/fd"
    for name in os.listdir(fd_dir):
        try:
            if os.readlink(f"{fd_dir}/{name}") == "anon_inode:[pidfd]":
                count += 1
        except OSError:
            pass
    return count


def cgroup_dir(daemon_pid: int, controller: str = "memory") -> Path | None:
    """The daemon's `<subtree>` cgroup for `controller` (v1) or on the unified tree (v2)."""
    for line in Path(f"/proc/{daemon_pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path(f"/sys/fs/cgroup/{controller}") / path.lstrip("/") / SUBTREE
    for line in Path(f"/proc/{daemon_pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return Path("/sys/fs/cgroup") / line[3:].lstrip("/") / SUBTREE
    return None


def pod_cgroup(subtree_dir: Path, uid: str) -> Path:
    return subtree_dir / f"pod-{uid}"


def procs(cgroup: Path) -> list[int]:
    try:
        return [int(x) for x in (cgroup / "cgroup.procs").read_text().split()]
    except (FileNotFoundError, ValueError):
        return []


def subtree_pids() -> list[tuple[int, str]]:
    """Every process in any `tinykube-bench` cgroup of any hierarchy, with its command."""
    seen: dict[int, str] = {}
    for top in Path("/sys/fs/cgroup").iterdir():
        for found in top.rglob(SUBTREE):
            for path in found.rglob("cgroup.procs"):
                for pid in procs(path.parent):
                    seen.setdefault(pid, _comm(pid))
    return sorted(seen.items())


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def subtree_cgroups() -> list[str]:
    """Our subtree's cgroups, wherever they are. os.walk, not rglob: another benchmark's or
    test's pod cgroup that goes while the tree is walked is skipped (rglob raised
    FileNotFoundError and aborted the run)."""
    found = []
    for top in Path("/sys/fs/cgroup").iterdir():
        for parent, dirs, _ in os.walk(top):
            if SUBTREE in dirs:
                found.append(os.path.join(parent, SUBTREE))
                dirs.remove(SUBTREE)
    return found


def link_names() -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split(":", 2)[1].strip().split("@")[0] for line in out.splitlines()]


def leftover_links(pod_uids: set[str]) -> list[str]:
    """The benchmark's bridge, its floor veths, and the veths of the pods it created (other
    daemons on the host name their veths `tkv...` too, so only our pods' uids count)."""
    ours = {f"tkv{uid[:8]}" for uid in pod_uids}
    return [n for n in link_names() if n == BRIDGE or n.startswith("tkbf") or n in ours]


def leak_report(started_pids: set[int], pod_uids: set[str]) -> list[str]:
    """What the run left behind: links, cgroups of its subtree, live processes it started."""
    problems = [f"link {name}" for name in leftover_links(pod_uids)]
    problems += [f"cgroup {path}" for path in subtree_cgroups()]
    alive = [pid for pid in started_pids if Path(f"/proc/{pid}").exists()
             and _state(pid) != "Z"]
    problems += [f"process {pid} ({_comm(pid)})" for pid in alive]
    return problems


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "?"
