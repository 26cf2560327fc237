"""Full teardown of this host's tinykube resources (`tinykube reset`), daemon running or not.

Order matters: first the daemon (so nothing restarts what we stop), then every process in
tinykube's cgroup subtree (pauses and containers, so namespaces die with them), then the
links and the bridge, then the directories. Each step is idempotent, so a reset that was
interrupted can simply be run again.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from pathlib import Path

from . import layout
from .cgroups import detect_pinned
from .records import list_records
from .syscalls import MNT_DETACH, proc_start_time, process_alive, umount2
from .warmpool import is_pool_uid

log = logging.getLogger("tinykube.reset")


def write_pid_file(run_dir: Path) -> None:
    """Record the daemon's pid and start time so `reset` can stop exactly this process."""
    pid = os.getpid()
    layout.pid_file(run_dir).write_text(f"{pid} {proc_start_time(pid)}\n")


def remove_pid_file(run_dir: Path) -> None:
    layout.pid_file(run_dir).unlink(missing_ok=True)


def stop_daemon(run_dir: Path, timeout: float = 20.0) -> bool:
    """SIGTERM the daemon named in the pid file (if it is still that process); True if one
    was stopped."""
    try:
        pid_text, start_text = layout.pid_file(run_dir).read_text().split()
        pid, start = int(pid_text), int(start_text)
    except (FileNotFoundError, ValueError):
        return False
    if pid == os.getpid() or not _same_process(pid, start):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _same_process(pid, start):
        if time.monotonic() > deadline:
            log.warning("daemon %d did not stop after SIGTERM; killing it", pid)
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
        time.sleep(0.05)
    return True


def _same_process(pid: int, start: int) -> bool:
    # A zombie counts as gone: it has stopped, and only its parent (which may be the one
    # waiting for this reset, e.g. a test harness) can reap it.
    return process_alive(pid, start)


def kill_recorded_processes(run_dir: Path) -> None:
    """Processes named by pod records (normally also in the cgroups; this catches a pause that
    was spawned but crashed before joining its cgroup)."""
    for record in list_records(run_dir):
        processes = [record.pause] + [c.process for c in record.containers.values()]
        for process in processes:
            if process and _same_process(process.pid, process.start_time):
                try:
                    os.kill(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


async def reset_host(root: Path, run_dir: Path, bridge: str, cidr: str,
                     cgroup_parent: str | None = None, cgroup_subtree: str = "tinykube",
                     purge: bool = False) -> list[str]:
    """Stop every pod and remove every host resource tinykube made; returns what was done."""
    from tinykube.netns.podnet import PodNetwork

    done: list[str] = []
    if stop_daemon(run_dir):
        done.append("stopped the daemon")
    kill_recorded_processes(run_dir)
    cgroups = detect_pinned(run_dir, cgroup_parent, subtree=cgroup_subtree)
    uids = cgroups.pod_uids()
    cgroups.remove_all()
    pool = {uid for uid in uids if is_pool_uid(uid)}
    if uids - pool:
        done.append(f"stopped {len(uids - pool)} pods and removed their cgroups")
    if pool:
        done.append(f"removed {len(pool)} warm sandboxes")
    network = PodNetwork(layout.network_dir(root), bridge=bridge, cidr=cidr)
    try:
        await network.teardown()
    finally:
        network.close()
    done.append(f"removed bridge {bridge} and pod links")
    _unmount_under(root)
    for path in (run_dir, layout.pods_dir(root)):
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
            done.append(f"removed {path}")
    if purge and root.exists():
        shutil.rmtree(root, ignore_errors=True)
        done.append(f"purged {root} (store and persistent volumes)")
    return done


def _unmount_under(root: Path) -> None:
    """Mounts are made inside containers' private mount namespaces, so the host should have
    none; a crash mid-spawn cannot leak one here, but check rather than trust."""
    prefix = str(root.resolve()) + "/"
    targets = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split()[4]
            if target.startswith(prefix):
                targets.append(target)
    for target in sorted(targets, key=len, reverse=True):
        try:
            umount2(target, MNT_DETACH)
        except OSError:
            pass
