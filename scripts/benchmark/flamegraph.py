"""`scripts/bench --profile NAME,...`: `py-spy record` flame graphs (SVG) of the daemon (or
the API server alone) during named parts of the run, one file per part:
docs/flamegraph-<name>.svg (`--profile-dir` elsewhere).

Each part is one missed-or-judged target of issue 20 (PROFILES below). py-spy samples the
process from outside (`--nonblocking`: it is never paused, so the figures are timed as
usual, a little slower for the sampler's CPU on a 2-core machine). The daemon start
(`restart`) cannot be attached to in time, so there py-spy starts the daemon itself
(`spawn_command`) and samples it from its first import. py-spy is the `bench` extra of
pyproject.toml; the benchmark installs it into its virtualenv when it is missing. An SVG is
written when py-spy gets SIGINT (or its child exits); `where_time_goes` reads back out of it
where the samples went (imports, the project's files, each library), for the run's notes.
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


_FRAME = re.compile(r'<title>(.*?) \([\d,]+ samples?, [\d.]+%\)</title><rect [^>]*?y="(\d+)"'
                    r'[^>]*?fg:x="(\d+)" fg:w="(\d+)"')
_WHERE = re.compile(r"\(([^():]+):\d+\)$")  # "func (path/file.py:123)" -> the path


def where_time_goes(svg: str, count: int = 8, project: tuple[str, ...] = ()
                    ) -> list[tuple[str, float]]:
    """The flame graph's samples by where they were spent, as (place, % of all samples),
    largest first: each frame's own samples (its width less its callees') go to
    "imports" when the frame runs under an import (module loading and the module's own
    top-level code), else to its file when the file is under one of `project`'s folders,
    else to its top-level package ("trio", "pyroute2", "sqlite3", ...)."""
    frames = [(html.unescape(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)))
              for m in _FRAME.finditer(svg)]
    if not frames:
        return []
    rows: dict[int, list[int]] = {}  # y -> indices of the frames on that row
    for i, (_, y, _, _) in enumerate(frames):
        rows.setdefault(y, []).append(i)
    parent: dict[int, int] = {}
    callees: Counter[int] = Counter()
    for i, (_, y, x, w) in enumerate(frames):
        for j in rows.get(y - 16, []):  # one row up is the caller (py-spy draws 16 px rows)
            _, _, px, pw = frames[j]
            if px <= x and x + w <= px + pw:
                parent[i] = j
                callees[j] += w
                break
    total = max(w for _, _, _, w in frames)  # the root, "all"
    places: Counter[str] = Counter()
    for i, (name, _, _, w) in enumerate(frames):
        own = w - callees[i]
        if own <= 0 or name.startswith("all"):
            continue
        places[_place(i, frames, parent, project)] += own
    return [(place, 100.0 * n / total) for place, n in places.most_common(count)]


def _place(i: int, frames: list[tuple[str, int, int, int]], parent: dict[int, int],
           project: tuple[str, ...]) -> str:
    j: int | None = i
    while j is not None:
        if frames[j][0].startswith("_find_and_load ("):
            return "imports"
        j = parent.get(j)
    match = _WHERE.search(frames[i][0])
    path = match.group(1) if match else frames[i][0]
    if path.startswith(project) and project:
        return path
    return path.split("/")[0].removesuffix(".py")
