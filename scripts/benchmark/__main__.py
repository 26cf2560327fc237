"""`scripts/bench`: run the measurements, print the table, optionally write JSON / markdown.

    scripts/bench [--quick] [--json FILE] [--markdown FILE] [--only NAME,...]
                  [--pods 100,500] [--repeat N] [--no-podman]

Measurements (in this order): start, profile (warm), profile-cold, recovery, rollout, restart,
scale, services, api, cluster, store.
`--profile [NAME,...]` also records py-spy flame graphs of the named parts (flamegraph.PROFILES;
bare `--profile`: the largest scale-out; `all`: every part) as docs/flamegraph-<name>.svg, and
lists each one's heaviest functions under its section.
Each starts its own daemon on a fresh root and purges it; the run ends with a reset of the
benchmark's names and a leak check (no `tkbench` bridge or veth of its pods, no cgroup of
its subtree, no process it started), whose findings are printed and make the exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

from . import (
    api,
    cluster,
    flamegraph,
    host,
    podstart,
    profile,
    recovery,
    restart,
    rollout,
    scaleout,
    services,
    storebench,
)
from .context import Context
from .daemon import reset_everything
from .report import Section, machine, machine_line, markdown, targets, to_json

MEASUREMENTS = {
    "start": podstart.run,
    "profile": profile.run,
    "profile-cold": profile.run_cold,
    "recovery": recovery.run,
    "rollout": rollout.run,
    "restart": restart.run,
    "scale": scaleout.run,
    "services": services.run,
    "api": api.run,
    "cluster": cluster.run,
    "store": storebench.run,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="small N, no 500 pods, no Podman: a few minutes")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    p.add_argument("--markdown", type=Path, help="also write the table as markdown here")
    p.add_argument("--only", default="", help=f"comma-separated subset of {','.join(MEASUREMENTS)}")
    p.add_argument("--pods", default=None, help="scale-out sizes (default 100,500; quick: 50)")
    p.add_argument("--repeat", type=int, default=None, help="samples per figure (default 15; "
                   "quick: 5)")
    p.add_argument("--restart-pods", type=int, default=None,
                   help="pods re-adopted by the daemon restart (default 500; quick: 20)")
    p.add_argument("--no-podman", action="store_true", help="skip the Podman column")
    p.add_argument("--no-warm-pool", action="store_true",
                   help="skip the warm-sandbox rows and never pass --warm-sandboxes (a "
                   "revision from before the pool: scripts/bench-ab)")
    p.add_argument("--profile", nargs="?", const=flamegraph.DEFAULT, default="",
                   metavar="NAME,...", help="record py-spy flame graphs of these parts of the "
                   f"run: {','.join(flamegraph.PROFILES)} or all (bare: {flamegraph.DEFAULT})")
    p.add_argument("--profile-dir", type=Path, default=Path("docs"),
                   help="where the flame graphs go (default docs: flamegraph-<name>.svg)")
    args = p.parse_args(argv)
    only = [n for n in args.only.split(",") if n]
    unknown = [n for n in only if n not in MEASUREMENTS]
    if unknown:
        p.error(f"--only: unknown measurement(s) {', '.join(unknown)}; "
                f"choose from {', '.join(MEASUREMENTS)}")
    args.only = only or list(MEASUREMENTS)
    try:
        pods = args.pods or ("50" if args.quick else "100,500")
        args.pods = [int(n) for n in pods.split(",") if n]
    except ValueError:
        p.error(f"--pods: expected comma-separated numbers, got {args.pods!r}")
    if any(n < 1 or n > 1000 for n in args.pods):
        p.error("--pods: each size must be within 1..1000 (the pod CIDR holds 1022)")
    args.repeat = args.repeat or (5 if args.quick else 15)
    if args.repeat < 1:
        p.error("--repeat: must be at least 1")
    args.restart_pods = args.restart_pods or (20 if args.quick else 500)
    try:
        args.profile = flamegraph.parse(args.profile)
    except ValueError as e:
        p.error(f"--profile: {e}")
    return args


# The parts each measurement can profile (flamegraph.PROFILES).
PROFILED_BY = {"start": ["start-cold", "start-warm"], "recovery": ["recovery"],
               "rollout": ["rollout", "rollout-probe"], "restart": ["restart"],
               "scale": ["scaleout", "scalein"], "api": ["api-creates", "api-list", "api-watch"]}
PROJECT = ("tinykube/", "runtime/", "controllers/", "netns/")


def flame_notes(ctx: Context, measurement: str) -> list[str]:
    """One note per flame graph the measurement recorded: its file and where the time
    went."""
    notes = []
    for name in PROFILED_BY.get(measurement, []):
        svg = ctx.flame(name)
        if svg is None or not svg.exists():
            continue
        text = svg.read_text(errors="replace")
        places = flamegraph.where_time_goes(text, 8, PROJECT)
        spent = "; ".join(f"{place} {pct:.0f}%" for place, pct in places)
        notes.append(f"flame graph `{name}` ({flamegraph.PROFILES[name]}): {svg.name}; "
                     f"where its samples went (own time): {spent}")
    return notes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("scripts/bench needs root (it runs a tinykube daemon)", file=sys.stderr)
        return 2
    ctx = Context(repeat=args.repeat, quick=args.quick, pod_counts=args.pods,
                  podman=not (args.quick or args.no_podman),
                  idle_seconds=5.0 if args.quick else 30.0, restart_pods=args.restart_pods,
                  warm_pool=not args.no_warm_pool,
                  profiles=args.profile, profile_dir=args.profile_dir.resolve())
    info = machine()
    print(f"machine: {machine_line(info)}", flush=True)
    reset_everything()  # a crashed earlier run may have left the benchmark's names behind
    sections: list[Section] = []
    failed = []
    began = time.monotonic()
    for name in args.only:
        print(f"== {name} ...", flush=True)
        started = time.monotonic()
        try:
            result = MEASUREMENTS[name](ctx)
        except Exception:  # noqa: BLE001 - one broken measurement must not hide the others
            traceback.print_exc()
            failed.append(name)
            result = Section(name, notes=["failed: " + traceback.format_exc(limit=1)
                                          .strip().splitlines()[-1]])
        result.seconds = time.monotonic() - started
        result.notes += flame_notes(ctx, name)
        sections.append(result)
        print(markdown([result]), flush=True)
    reset_everything()
    leaks = host.leak_report(ctx.pids, ctx.pod_uids)
    cleanup = Section("Clean-up")
    cleanup.notes.append("leak check after `reset --purge`: " +
                         ("nothing left" if not leaks else "LEFT BEHIND: " + "; ".join(leaks)))
    sections.append(cleanup)
    table = markdown(sections) + "\n## Targets of issue 20\n\n" + targets(sections)
    print("\n" + table)
    print(f"total {time.monotonic() - began:.0f} s", flush=True)
    argv_used = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    if args.json:
        args.json.write_text(to_json(sections, info, argv_used) + "\n")
    if args.markdown:
        args.markdown.write_text(f"Machine: {machine_line(info)}\n\n{table}")
    return 1 if (leaks or failed) else 0


if __name__ == "__main__":
    sys.exit(main())
