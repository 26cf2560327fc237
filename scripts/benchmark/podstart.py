"""Pod start: from sending a Pod to the API to the watch showing every container running.

Cold and warm starts are measured apart, never blended: the cold samples on a daemon with
`--warm-sandboxes 0` (the default: every pod builds its sandbox), the warm ones on a daemon
with a pool of `warmpool.DEFAULT_SIZE`, each sample taken once the pool is full again and
checked afterwards to have got a pool sandbox (its pause ran in a pool member's cgroup
before the pod was created).

Samples are interleaved (tinykube, floor, Podman, tinykube, ...) so drifting background load
hits all three alike and the ratios compare like with like. Each pod is deleted, and gone,
before the next starts, so every sample is a pod starting alone. One warm-up of each is
not counted (first-use costs: page cache, Podman's pause image).
"""

from __future__ import annotations

import time

from . import floor, manifests, peer, pool
from .context import Context
from .report import Section, Target
from .stats import Summary, ratio, scaled
from .watching import Watcher, running

from tinykube.runtime.warmpool import DEFAULT_SIZE

LABEL = "bench-start"
BATCH = 20


def start_one(d, watch: Watcher, name: str, **shape) -> tuple[float, float, float]:
    """(create → running, create call alone, delete → gone) in seconds."""
    up = watch.expect(lambda pods: running(pods.get(name)), f"pod {name} running")
    start = time.monotonic()
    d.client.create(manifests.pod(name, {LABEL: "1"}, **shape))
    accepted = time.monotonic()
    started = up.wait(60)
    gone = watch.expect(lambda pods: name not in pods, f"pod {name} gone")
    deleting = time.monotonic()
    d.client.delete("Pod", name)
    removed = gone.wait(60)
    return started - start, accepted - start, removed - deleting


def start_batch(d, watch: Watcher, prefix: str, count: int) -> float:
    names = [f"{prefix}-{i}" for i in range(count)]
    up = watch.expect(lambda pods: all(running(pods.get(n)) for n in names),
                      f"{count} pods running")
    start = time.monotonic()
    for name in names:
        d.client.create(manifests.pod(name, {LABEL: "1"}))
    elapsed = up.wait(120) - start
    gone = watch.expect(lambda pods: not any(n in pods for n in names), "batch gone")
    for name in names:
        d.client.delete("Pod", name)
    gone.wait(120)
    return elapsed


def run(ctx: Context) -> Section:
    section = Section("Pod start")
    why_no_podman = peer.missing() if ctx.podman else "skipped (--quick or --no-podman)"
    podman = peer.Podman() if why_no_podman is None else None
    one, call, delete, two, floors, peers = [], [], [], [], [], []
    # no pool (the default); the flag only where the daemon has it (not before the pool existed)
    d = ctx.daemon(warm_sandboxes=0) if ctx.warm_pool else ctx.daemon()
    try:
        with Watcher(d.socket, "Pod", label_selector=f"{LABEL}=1") as watch:
            start_one(d, watch, "warm-up")
            if podman:
                podman.start_pod("tkbench-warm-up")
                podman.remove_pods()
            with ctx.profiling("start-cold", d.pid):
                for i in range(ctx.repeat):
                    total, accepted, removed = start_one(d, watch, f"one-{i}")
                    one.append(total)
                    call.append(accepted)
                    delete.append(removed)
                    two.append(start_one(d, watch, f"two-{i}", containers=2,
                                         empty_dir=True)[0])
                    floors.append(floor.floor_once(i))
                    if podman:
                        peers.append(podman.start_pod(f"tkbench-{i}"))
                        podman.remove_pods()
            batch = start_batch(d, watch, "batch", BATCH)
            ctx.pod_uids |= watch.uids
        peer_batch = None
        if podman:
            start = time.monotonic()
            for i in range(BATCH):
                podman.start_pod(f"tkbench-batch-{i}")
            peer_batch = time.monotonic() - start
    finally:
        d.purge()
        if podman:
            podman.close()
    warm, warm_floors, served = warm_starts(ctx) if ctx.warm_pool else ([], [], 0)

    ms = 1000.0
    t_one = section.add("tinykube cold (no warm sandbox): 1-container pod, create → running",
                        Summary.of(scaled(one, ms), "ms"), Target(18.0))
    section.add("  of which the API create call", Summary.of(scaled(call, ms), "ms"))
    section.add("tinykube: 2 containers + emptyDir, create → running",
                Summary.of(scaled(two, ms), "ms"))
    section.add("tinykube: delete (grace 2 s, app exits on SIGTERM) → gone",
                Summary.of(scaled(delete, ms), "ms"))
    t_floor = section.add("floor: ip link add veth + unshare --net --uts --ipc --fork true",
                          Summary.of(scaled(floors, ms), "ms"))
    floor_ratio = ratio(t_one.summary, t_floor.summary)
    if floor_ratio is not None:
        section.value("tinykube cold / floor (medians)", floor_ratio, "x", Target(3.0))
    section.value(f"tinykube: {BATCH} pods created back to back → all running", batch, "s")
    t_warm = None
    if warm:
        t_warm = section.add("tinykube warm (a pool sandbox): 1-container pod, create → running",
                             Summary.of(scaled(warm, ms), "ms"), Target(10.0))
        t_warm_floor = section.add("floor, measured between the warm samples",
                                   Summary.of(scaled(warm_floors, ms), "ms"))
        warm_ratio = ratio(t_warm.summary, t_warm_floor.summary)
        if warm_ratio is not None:
            section.value("tinykube warm / floor (medians)", warm_ratio, "x")
        section.value("warm samples that got a pool sandbox", served, "of " + str(len(warm)))
    else:
        section.notes.append("no warm rows: --no-warm-pool")
    if podman:
        t_peer = section.add("podman: pod create + run --rootfs (network none)",
                             Summary.of(scaled(peers, ms), "ms"))
        speedup = ratio(t_peer.summary, t_one.summary)
        if speedup is not None:
            section.value("podman / tinykube cold (medians)", speedup, "x",
                          Target(10.0, at_most=False))
        warm_speedup = ratio(t_peer.summary, t_warm.summary) if t_warm else None
        if warm_speedup is not None:
            section.value("podman / tinykube warm (medians)", warm_speedup, "x")
        assert peer_batch is not None
        section.value(f"podman: {BATCH} pods, one after another", peer_batch, "s")
        section.value(f"podman / tinykube, {BATCH} pods", peer_batch / batch, "x")
        section.notes.append("Podman runs with --network none (it could not set up networks "
                             "here); tinykube's pods have a veth and an address on a bridge.")
    else:
        section.notes.append(f"no Podman column: {why_no_podman}")
    ctx.raw["pod_start"] = {"warm_s": warm, "warm_floor_s": warm_floors,
                            "warm_served": served, "one_s": one, "api_call_s": call,
                            "delete_s": delete,
                            "two_s": two, "floor_s": floors, "podman_s": peers,
                            "batch_s": batch, "podman_batch_s": peer_batch}
    return section


def warm_starts(ctx: Context) -> tuple[list[float], list[float], int]:
    """(warm create → running samples, floor samples between them, how many samples got a
    pool sandbox) on a daemon with a pool."""
    samples, floors, served = [], [], 0
    d = ctx.daemon(warm_sandboxes=DEFAULT_SIZE)
    try:
        with Watcher(d.socket, "Pod", label_selector=f"{LABEL}=1") as watch:
            pool.wait_full(d)
            start_one(d, watch, "warm-up")
            with ctx.profiling("start-warm", d.pid):
                for i in range(ctx.repeat):
                    before = pool.wait_full(d)
                    name = f"warm-{i}"
                    up = watch.expect(lambda pods, n=name: running(pods.get(n)),
                                      f"pod {name} running")
                    start = time.monotonic()
                    uid = d.client.create(manifests.pod(name, {LABEL: "1"}))["metadata"]["uid"]
                    samples.append(up.wait(60) - start)
                    served += pool.pause_of(d, uid) in before
                    gone = watch.expect(lambda pods, n=name: n not in pods, f"pod {name} gone")
                    d.client.delete("Pod", name)
                    gone.wait(60)
                    floors.append(floor.floor_once(i))
            ctx.pod_uids |= watch.uids
    finally:
        d.purge()
    return samples, floors, served
