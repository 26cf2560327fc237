"""`scripts/bench-ab REV`: this checkout against revision REV, measured the same way.

REV is checked out into a temporary git worktree (/run/tkab-*) with its own .venv
(its `scripts/setup`). Then this checkout's benchmark code runs the chosen sections against
each side in turn, old/new/old/new... for `--rounds` rounds, so both sides see the same
machine load; only the daemon, CLI and API server differ (TINYKUBE_BENCH_TARGET, see
daemon.py). The clients, watchers and timing code are the same for both. Prints, per figure,
the median of each side's round medians, their range, the new/old ratio and whether the
difference is more than that spread (abtable.py). The worktree and its venv are removed at
the end; every bench run purges its daemons (`reset --purge`) and checks for leaks.

    scripts/bench-ab REV [--rounds 3] [--only start,api,store,scale,rollout] [--pods 100]
                         [--repeat 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import abtable
from .daemon import reset_everything

HERE = Path(__file__).resolve().parents[2]
# Drivers this checkout's benchmark runs inside the target's tree (an older revision may
# not have them; they only use interfaces both sides share).
DRIVERS = ["scripts/benchmark/apiserver_only.py", "scripts/benchmark/store_direct.py"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench-ab", description=__doc__.split("\n\n")[0])
    p.add_argument("rev", help="the old revision (a commit, tag or branch)")
    p.add_argument("--rounds", type=int, default=3, help="old/new pairs (default 3)")
    p.add_argument("--only", default="start,api,store,scale,rollout",
                   help="scripts/bench sections (default start,api,store,scale,rollout)")
    p.add_argument("--pods", default="100", help="scale-out size(s) (default 100)")
    p.add_argument("--repeat", type=int, default=5, help="samples per figure per run")
    p.add_argument("--json", type=Path, help="also write every run and the comparison here")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds: must be at least 1")
    return args


def checkout(rev: str) -> Path:
    """REV in a fresh worktree under /run with its own .venv; raises if setup fails."""
    tree = Path(tempfile.mkdtemp(prefix="tkab-", dir="/run"))
    subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", "--force",
                    str(tree), rev], check=True, capture_output=True, text=True)
    for driver in DRIVERS:
        if not (tree / driver).exists():
            shutil.copy2(HERE / driver, tree / driver)
    print(f"setup of {rev} in {tree} ...", flush=True)
    subprocess.run(["bash", "scripts/setup"], cwd=tree, check=True)
    # Bytecode for both sides alike (an older setup did not compile it; this one does).
    subprocess.run([str(tree / ".venv/bin/python"), "-m", "compileall", "-q", "-j", "0",
                    *[d for d in ("runtime", "controllers", "netns", "tinykube")
                      if (tree / d).is_dir()]], cwd=tree, check=True, capture_output=True)
    return tree


def remove(tree: Path) -> None:
    subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(tree)],
                   check=False, capture_output=True)
    shutil.rmtree(tree, ignore_errors=True)
    subprocess.run(["git", "-C", str(HERE), "worktree", "prune"], check=False)


def bench_once(args: argparse.Namespace, target: Path | None, out: Path) -> dict[str, Any]:
    """One `scripts/bench` run of the sections against `target` (None: this checkout)."""
    env = dict(os.environ)
    env.pop("TINYKUBE_BENCH_TARGET", None)
    if target is not None:
        env["TINYKUBE_BENCH_TARGET"] = str(target)
    load = os.getloadavg()
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "scripts.benchmark", "--quick", "--no-podman",
                    "--no-warm-pool", "--only", args.only, "--pods", args.pods,
                    "--repeat", str(args.repeat), "--json", str(out)],
                   cwd=HERE, env=env, check=False, stdout=subprocess.DEVNULL)
    if not out.exists():
        raise RuntimeError(f"the bench run against {target or HERE} wrote no results")
    run = json.loads(out.read_text())
    run["load_before"] = load
    run["wall_seconds"] = time.monotonic() - started
    failed = [s["title"] for s in run["sections"] if any("failed" in n for n in s["notes"])]
    if failed:
        print(f"  failed sections: {', '.join(failed)}", flush=True)
    return run


def report(rev: str, new_rev: str, old_runs: list[dict[str, Any]],
           new_runs: list[dict[str, Any]]) -> str:
    loads = [r["load_before"][0] for r in old_runs + new_runs]
    return (f"\nold = {rev}, new = {new_rev} (HEAD of {HERE}); {len(old_runs)} round(s), "
            f"alternating; load average (1 min) before the runs {min(loads):.1f}.."
            f"{max(loads):.1f}\n\n" + abtable.markdown(abtable.compare(old_runs, new_runs)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("scripts/bench-ab needs root (it runs tinykube daemons)", file=sys.stderr)
        return 2
    rev = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", args.rev],
                         check=True, capture_output=True, text=True).stdout.strip()
    new_rev = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                             check=True, capture_output=True, text=True).stdout.strip()
    tree = checkout(rev)
    scratch = Path(tempfile.mkdtemp(prefix="tkab-results-", dir="/run"))
    old_runs: list[dict[str, Any]] = []
    new_runs: list[dict[str, Any]] = []
    try:
        for r in range(args.rounds):
            for side, target, runs in (("old", tree, old_runs), ("new", None, new_runs)):
                print(f"round {r + 1}/{args.rounds}: {side} (load {os.getloadavg()[0]:.1f})"
                      " ...", flush=True)
                run = bench_once(args, target, scratch / f"{side}-{r}.json")
                print(f"  {run['wall_seconds']:.0f} s", flush=True)
                runs.append(run)
            # the table so far after every pair: a run cut short still leaves its figures
            print(report(rev, new_rev, old_runs, new_runs), flush=True)
    finally:
        remove(tree)
        shutil.rmtree(scratch, ignore_errors=True)
        print(reset_everything().strip(), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"old": rev, "new": new_rev, "old_runs": old_runs,
                                         "new_runs": new_runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
