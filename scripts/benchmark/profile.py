"""Where a pod start's time goes: the steps of the start path, timed inside the daemon.

A daemon started through `profiled_daemon` logs a span per step (store write, kubelet sees
the pod, record, cgroups, pause + namespaces, netns attach and its parts, pod files, volumes,
container spawn, events, status publish). For each pod started alone, its spans are placed
between the benchmark's two stamps (create sent, Running seen on the watch):

  api        create sent → the Pod's store write done (HTTP, validation, SQLite + fsync)
  dispatch   store write → the kubelet's watch hands it to a new pod worker
  steps      the worker's own steps, in order (nested parts are indented, not summed)
  delivery   the status write that says Running → the event reaches the benchmark's watch
  unaccounted  the rest: trio scheduling, thread hops, Python glue between the steps
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

from . import manifests
from .context import Context
from .report import Section
from .stats import Summary
from .watching import Watcher, running

from tinykube.runtime.warmpool import DEFAULT_SIZE

LABEL = "bench-profile"


def load_spans(path: Path) -> list[dict]:
    spans = []
    for line in path.read_text().splitlines():
        try:
            spans.append(json.loads(line))
        except ValueError:
            continue  # a line cut by the daemon's stop
    return spans


def breakdown(spans: list[dict], uid: str, sent: float, seen: float) -> dict[str, float]:
    """Milliseconds per phase of one pod start; top-level phases (no leading space) plus
    `api`, `dispatch`, `delivery` and `unaccounted` sum to the total."""
    mine = [s for s in spans if uid.startswith(s["uid"]) and sent <= s["start"] <= seen]
    phases: dict[str, float] = defaultdict(float)
    stored = next((s["end"] for s in sorted(mine, key=lambda s: s["start"])
                   if s["phase"].startswith("store write Pod ADDED")), None)
    observed = next((s["start"] for s in mine if s["phase"] == "kubelet observe"), None)
    if stored is not None:
        phases["api (request → Pod stored)"] = (stored - sent) * 1e3
        if observed is not None:
            phases["dispatch (watch → pod worker)"] = (observed - stored) * 1e3
    status_writes = [s for s in mine if s["phase"].startswith("store write Pod MODIFIED")]
    if status_writes:
        last = max(status_writes, key=lambda s: s["end"])
        phases["delivery (status write → benchmark's watch)"] = (seen - last["end"]) * 1e3
    for s in mine:
        name = s["phase"]
        if name.startswith("store write Pod ADDED") or name == "kubelet observe":
            continue
        if name == "status publish":
            continue  # its store write is counted below; the rest is computing the status
        if name.startswith("store write"):
            name = "status write (store)"
        phases[name] += (s["end"] - s["start"]) * 1e3
    total = (seen - sent) * 1e3
    counted = sum(v for k, v in phases.items() if not k.startswith(" "))
    phases["unaccounted (scheduling, thread hops, glue)"] = total - counted
    phases["total (create sent → Running seen)"] = total
    return dict(phases)


def run(ctx: Context) -> Section:
    """Pods starting warm (a pool of warm sandboxes)."""
    return _run(ctx, "Pod start profile, warm (ms per step, daemon-side timers)", DEFAULT_SIZE)


def run_cold(ctx: Context) -> Section:
    """Pods starting cold (`--warm-sandboxes 0`: each builds its own sandbox)."""
    return _run(ctx, "Pod start profile, cold (ms per step, daemon-side timers)", 0)


def _run(ctx: Context, title: str, warm_sandboxes: int | None) -> Section:
    section = Section(title)
    spans_file = Path(f"/tmp/tkbench-spans-{time.time_ns()}.jsonl")
    d = ctx.daemon(profile_file=spans_file, warm_sandboxes=warm_sandboxes)
    marks: list[tuple[str, float, float]] = []
    try:
        with Watcher(d.socket, "Pod", label_selector=f"{LABEL}=1") as watch:
            for i in range(ctx.repeat + 1):
                name = f"profile-{i}"
                up = watch.expect(lambda pods, n=name: running(pods.get(n)), name)
                sent = time.monotonic()
                uid = d.client.create(manifests.pod(name, {LABEL: "1"}))["metadata"]["uid"]
                seen = up.wait(60)
                if i > 0:  # the first start is a warm-up
                    marks.append((uid, sent, seen))
                gone = watch.expect(lambda pods, n=name: n not in pods, f"{name} gone")
                d.client.delete("Pod", name)
                gone.wait(60)
            ctx.pod_uids |= watch.uids
    finally:
        d.purge()
    spans = load_spans(spans_file)
    spans_file.unlink(missing_ok=True)
    per_phase: dict[str, list[float]] = defaultdict(list)
    for uid, sent, seen in marks:
        for phase, ms in breakdown(spans, uid, sent, seen).items():
            per_phase[phase].append(ms)
    order = ["api (request → Pod stored)", "dispatch (watch → pod worker)"]
    timeline = sorted({s["phase"] for s in spans} - {"kubelet observe", "status publish"}
                      - {p for p in (s["phase"] for s in spans) if p.startswith("store write")},
                      key=lambda p: min(s["start"] for s in spans if s["phase"] == p))
    order += [p for p in timeline if p in per_phase]
    order += ["status write (store)", "delivery (status write → benchmark's watch)",
              "unaccounted (scheduling, thread hops, glue)",
              "total (create sent → Running seen)"]
    for phase in order:
        if phase in per_phase:
            section.add(phase, Summary.of(per_phase[phase], "ms"))
    section.notes.append("steps indented are parts of the step above (not added twice); "
                         "timers add a few µs per step; each pod started alone")
    ctx.raw["profile"] = dict(per_phase.items())
    return section
