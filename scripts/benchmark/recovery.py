"""Recovery: how fast a killed container, and a pod whose pause was killed, come back.

- Container: `kill -9` of the app (the child of the container's tk-shim, whose pid is in
  `containerID`) of a restartPolicy Always pod → the watch shows it running again with
  restartCount 1 (its first restart). Each sample is a fresh pod; kills are spaced so the
  restarts do not overlap.
- Pause: `kill -9` of the pause process of a ReplicaSet's pod (found in the pod's cgroup) →
  the pod running again on a new sandbox with its container restarted (restartPolicy
  Always: the kubelet's SandboxChanged; a warm sandbox when the pool has one), or a
  replacement pod under another name, and the set whole again.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from . import host, manifests
from .context import Context
from .report import Section, Target
from .stats import Summary, scaled
from .watching import Watcher, container_pid, restart_count, running

from tinykube.runtime.backoff import DEFAULT_POLICY

LABEL = "bench-recovery"
RS = "recover"
KILL_SPACING = 0.5  # s between container kills: each restart runs alone


def app_pid(shim_pid: int) -> int:
    """The app the shim monitors: its only child."""
    children = Path(f"/proc/{shim_pid}/task/{shim_pid}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"tk-shim {shim_pid}: expected one child, found {children}")
    return int(children[0])


def container_restarts(ctx: Context, d, section: Section) -> list[float]:
    names = [f"crash-{i}" for i in range(ctx.repeat)]
    with Watcher(d.socket, "Pod", label_selector=f"{LABEL}=1") as watch:
        up = watch.expect(lambda pods: all(running(pods.get(n)) for n in names), "pods up")
        for name in names:
            d.client.create(manifests.pod(name, {LABEL: "1"}))
        up.wait(120)
        pods = watch.snapshot()
        pending = []
        for name in names:
            victim = app_pid(container_pid(pods[name], "app"))
            back = watch.expect(lambda p, n=name: running(p.get(n))
                                and restart_count(p.get(n), "app") >= 1, f"{name} restarted")
            killed = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            pending.append((killed, back))
            time.sleep(KILL_SPACING)
        samples = [back.wait(120) - killed for killed, back in pending]
        ctx.pod_uids |= watch.uids
    return samples


def pause_replacements(ctx: Context, d) -> list[float]:
    replicas = 3
    subtree = host.cgroup_dir(d.pid)
    assert subtree is not None, "daemon's cgroup not found"
    samples = []
    with Watcher(d.socket, "Pod", label_selector=f"bench={RS}") as watch:
        def whole(pods: dict) -> bool:
            return sum(running(p) for p in pods.values()) == replicas
        up = watch.expect(whole, "replica set up")
        d.client.create(manifests.replica_set(RS, replicas))
        up.wait(120)
        for _ in range(ctx.repeat):
            pods = watch.snapshot()
            before = set(pods)
            victim = next(p for p in pods.values() if running(p))
            pause = host.procs(host.pod_cgroup(subtree, victim["metadata"]["uid"]))
            if len(pause) != 1:
                raise RuntimeError(f"pod {victim['metadata']['name']}: expected the pause "
                                   f"alone in the pod cgroup, found {pause}")
            # Under restartPolicy Always the kubelet gives the same pod a new sandbox and
            # restarts its containers (SandboxChanged); a pod that failed instead would be
            # replaced by the ReplicaSet under another name. Either counts.
            name = victim["metadata"]["name"]
            restarts = restart_count(victim, "app")
            replaced = watch.expect(lambda p, old=before, n=name, r=restarts: whole(p) and (
                any(running(o) for k, o in p.items() if k not in old)
                or (running(p.get(n)) and restart_count(p.get(n), "app") > r)),
                "replacement running")
            killed = time.monotonic()
            os.kill(pause[0], signal.SIGKILL)
            samples.append(replaced.wait(120) - killed)
        ctx.pod_uids |= watch.uids
        d.client.delete("ReplicaSet", RS)
    return samples


def run(ctx: Context) -> Section:
    section = Section("Recovery")
    d = ctx.daemon()
    try:
        with ctx.profiling("recovery", d.pid):
            restarts = container_restarts(ctx, d, section)
            replacements = pause_replacements(ctx, d)
    finally:
        d.purge()
    section.add("container kill -9 → running again (first restart, restartPolicy Always)",
                Summary.of(scaled(restarts, 1000), "ms"), Target(25.0))
    backoff = DEFAULT_POLICY.initial
    if min(restarts) >= backoff:
        section.add(f"  of which after the {backoff:g} s crash back-off",
                    Summary.of([(r - backoff) * 1000 for r in restarts], "ms"))
        section.notes.append(
            f"tinykube waits its {backoff:g} s crash back-off before the FIRST restart; the "
            "kubelet restarts a first crash at once (doBackOff: IsInBackOffSince is false for a "
            "container with no back-off entry yet) and waits 10 s only from the second.")
    section.add("pause kill -9 (ReplicaSet pod) → replacement pod running",
                Summary.of(scaled(replacements, 1000), "ms"), Target(60.0))
    ctx.raw["recovery"] = {"container_restart_s": restarts, "pause_replacement_s": replacements}
    return section
