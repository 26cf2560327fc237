"""Rollout: a 20-replica Deployment rolled to a new pod template until it is complete.

"Complete" is the test `tinykube rollout status` applies (kubectl's: the new generation
observed, every replica updated, no old replica left, every updated one available), judged
on the Deployment's watch events; the CLI `rollout status`, started right after the change,
is timed too. Default strategy: maxSurge 25%, maxUnavailable 25%.

With a readiness probe (exec `true`, initialDelaySeconds 1, periodSeconds 1) no new pod
counts as available before its first probe, 1 s after it starts. Surge + unavailable allow
10 of 20 pods in flight, so a rollout needs at least ceil(20 / 10) = 2 rounds of that wait:
the lower bound is 2 s, and the figure is reported against it.
"""

from __future__ import annotations

import math
import subprocess
import time

from . import manifests
from .context import Context
from .daemon import PYTHON, TARGET
from .report import Section, Target
from .stats import Summary
from .watching import Watcher

from tinykube.cli.rollout import deployment_status

REPLICAS = 20
PROBE = {"exec": {"command": ["true"]}, "initialDelaySeconds": 1, "periodSeconds": 1}


def complete(deployment: dict | None, generation: int) -> bool:
    if not deployment or deployment["metadata"].get("generation", 0) < generation:
        return False
    return deployment_status(deployment)[1]


def rollouts(ctx: Context, d, name: str, count: int, profile: str,
             **shape) -> tuple[list[float], list[float]]:
    """(watch-judged seconds, CLI `rollout status` seconds) per rollout; the rollouts are
    the flame graph `profile` if `--profile` asked for it."""
    with Watcher(d.socket, "Deployment") as watch:
        up = watch.expect(lambda deps: complete(deps.get(name), 1), f"{name} available")
        d.client.create(manifests.deployment(name, REPLICAS, **shape))
        up.wait(300)
        with ctx.profiling(profile, d.pid):
            watched, cli = _roll(d, name, count, watch)
        d.client.delete("Deployment", name)
    return watched, cli


def _roll(d, name: str, count: int, watch: Watcher) -> tuple[list[float], list[float]]:
    """Roll the Deployment `count` times, one after another."""
    watched: list[float] = []
    cli: list[float] = []
    for i in range(count):
        generation = watch.snapshot()[name]["metadata"]["generation"] + 1
        done = watch.expect(lambda deps, g=generation: complete(deps.get(name), g),
                            f"{name} rollout {i}")
        start = time.monotonic()
        d.client.patch("Deployment", name, manifests.NAMESPACE, {"spec": {"template": {
            "metadata": {"annotations": {"bench/round": str(i)}}}}})
        status = subprocess.run(
            [PYTHON, "-m", "tinykube.cli.main", "--socket", str(d.socket),
             "rollout", "status", f"deployment/{name}", "--timeout", "300s"],
            capture_output=True, text=True, check=False,
            cwd=TARGET)
        cli_done = time.monotonic()
        if status.returncode != 0:
            raise RuntimeError(f"rollout status {name}: {status.stdout}{status.stderr}")
        watched.append(done.wait(300) - start)
        cli.append(cli_done - start)
    return watched, cli


def run(ctx: Context) -> Section:
    section = Section(f"Rollout ({REPLICAS} replicas)")
    count = min(ctx.repeat, 8)
    d = ctx.daemon()
    try:
        plain, plain_cli = rollouts(ctx, d, "roll", count, "rollout")
        probed, probed_cli = rollouts(ctx, d, "roll-probe", count, "rollout-probe",
                                      readiness_probe=PROBE)
        with Watcher(d.socket, "Pod") as pods:  # the uids of what is left, for the leak check
            ctx.pod_uids |= pods.uids
    finally:
        d.purge()
    section.add("no probes: template change → rollout complete (watch)",
                Summary.of(plain, "s"), Target(1.0))
    section.add("no probes: template change → `rollout status` exits",
                Summary.of(plain_cli, "s"))
    rounds = math.ceil(REPLICAS / (math.ceil(REPLICAS * 0.25) + math.floor(REPLICAS * 0.25)))
    bound = rounds * PROBE["initialDelaySeconds"]
    with_probe = section.add("readiness probe: template change → rollout complete (watch)",
                             Summary.of(probed, "s"))
    section.add("readiness probe: template change → `rollout status` exits",
                Summary.of(probed_cli, "s"))
    section.value("readiness probe: lower bound from the probe delay", bound, "s")
    section.value("readiness probe: rollout / lower bound (medians)",
                  with_probe.summary.median / bound, "x", Target(1.15))
    ctx.raw["rollout"] = {"plain_s": plain, "plain_cli_s": plain_cli, "probe_s": probed,
                          "probe_cli_s": probed_cli, "probe_bound_s": bound}
    return section
