"""`scripts/bench --profile NAME,...`: `py-spy record` flame graphs (SVG) of the daemon (or
the API server alone) during named parts of the run, one file per part:
docs/flamegraph-<name>.svg (`--profile-dir` elsewhere).

Each part is one missed-or-judged target of issue 20 (PROFILES below). py-spy samples the
process from outside (`--nonblocking`: it is never paused, so the figures are timed as
usual, a little slower for the sampler's CPU on a 2-core machine). The daemon start
(`restart`) cannot be attached to in time, so there py-spy starts the daemon itself
(`spawn_command`) and samples it from its first import. py-spy is the `bench` extra of
pyproject.toml; the benchmark installs it into its virtualenv when it is missing. An SVG is
written when py-spy gets SIGINT (or its child exits); `hot_frames` reads the heaviest
functions back out of it for the run's notes.
"""

from __future__ import annotations

import contextlib
import html
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

RATE = 250  # samples per second
# name -> what is sampled (the figure whose time it shows)
PROFILES = {
    "start-cold": "the daemon while pods start one by one, cold (`--warm-sandboxes 0`)",
    "start-warm": "the daemon while pods start one by one from its warm pool",
    "recovery": "the daemon while it restarts killed containers and replaces killed pods",
    "rollout": "the daemon during the 20-replica rollouts without probes",
    "rollout-probe": "the daemon during the 20-replica rollouts with a readiness probe",
    "restart": "the daemon's first restart with the pods running: spawn → all re-adopted",
    "scaleout": "the daemon while the ReplicaSet scales 0 → the largest size",
    "scalein": "the daemon while the ReplicaSet scales the largest size → 0, leak-free",
    "api-creates": "the API server alone during the creates-per-second rounds",
    "api-list": "the API server alone while it answers the lists of all pods",
    "api-watch": "the API server alone during the 50-watcher fan-out",
}
DEFAULT = "scaleout"
_TITLE = re.compile(r"<title>(.*?) \(([\d,]+) samples?, [\d.]+%\)</title>")


def parse(names: str) -> list[str]:
    """`--profile`'s comma-separated names ("all": every one); ValueError names the bad."""
    chosen = list(PROFILES) if names.strip() == "all" else [n for n in names.split(",") if n]
    unknown = [n for n in chosen if n not in PROFILES]
    if unknown:
        raise ValueError(f"unknown profile(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(PROFILES)} or all")
    return chosen


def py_spy() -> str:
    """The py-spy program, installed first if needed."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    found = shutil.which("py-spy")
    if found:
        return found
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "py-spy>=0.3"], check=True)
    return str(beside)


def _record(output: Path) -> list[str]:
    return [py_spy(), "record", "--rate", str(RATE), "--nonblocking", "--format", "flamegraph",
            "--output", str(output), "--function"]


def spawn_command(output: Path, command: list[str]) -> list[str]:
    """`command` run under py-spy from its start (its pid is py-spy's child)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    return [*_record(output), "--", *command]


@contextlib.contextmanager
def recording(pid: int, output: Path | None, title: str) -> Iterator[None]:
    """Sample `pid` into the flame graph `output` for the duration of the block (a no-op
    when `output` is None)."""
    if output is None:
        yield
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    spy = subprocess.Popen([*_record(output), "--pid", str(pid)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            _, err = spy.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
        if not output.exists():
            raise RuntimeError(f"py-spy wrote no flame graph ({title}): "
                               + err.decode(errors="replace")[-1000:])


def hot_frames(svg: str, count: int = 8, under: tuple[str, ...] = ()) -> list[tuple[str, float]]:
    """The `count` functions with the most samples in a py-spy SVG, as (name, % of all
    samples); a function's samples are summed over every stack it is on (its inclusive
    share; a recursive one counts twice). `under`: only frames whose text contains one of
    these (e.g. the project's folders), to skip the event loop and the interpreter."""
    frames: Counter[str] = Counter()
    total = 0
    for match in _TITLE.finditer(svg):
        name, samples = html.unescape(match.group(1)), int(match.group(2).replace(",", ""))
        if name == "all":
            total = samples
            continue
        if not under or any(u in name for u in under):
            frames[name] += samples
    if not total:
        return []
    return [(name, 100.0 * n / total) for name, n in frames.most_common(count)]
