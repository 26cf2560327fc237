"""Results of a benchmark run: rows grouped in sections, rendered as a markdown table or JSON.

A row is one figure (a `Summary` of repeated samples, or a single value as a one-sample
summary) with an optional target. A target is judged on the median, the figure the issue's
targets speak of, unless it names another statistic (a p95 bound); the verdict says by how
much it is met or missed, never hides a miss. `targets` gathers every row with a target into
one table, the "where we stand" of a run.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .stats import Summary


@dataclass(frozen=True)
class Target:
    """`limit` in the row's unit; `at_most` False for "at least" targets (e.g. a speed-up);
    `statistic` the summary figure judged ("median", or "p95" for a tail bound)."""

    limit: float
    at_most: bool = True
    statistic: str = "median"

    def judged(self, summary: Summary) -> float:
        return float(getattr(summary, self.statistic))

    def verdict(self, value: float) -> str:
        met = value <= self.limit if self.at_most else value >= self.limit
        if met:
            return "met"
        if self.limit == 0 or value == 0:
            return "missed"
        factor = value / self.limit if self.at_most else self.limit / value
        return f"missed by {factor:.2f}x"

    def text(self, unit: str) -> str:
        stat = "" if self.statistic == "median" else f"{self.statistic} "
        return f"{stat}{'≤' if self.at_most else '≥'} {fmt(self.limit)} {unit}".strip()


@dataclass
class Row:
    name: str
    summary: Summary
    target: Target | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, **self.summary.as_dict()}
        if self.target is not None:
            out["target"] = self.target.text(self.summary.unit)
            out["verdict"] = self.target.verdict(self.target.judged(self.summary))
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time the measurement took

    def add(self, name: str, summary: Summary, target: Target | None = None,
            note: str = "") -> Row:
        row = Row(name, summary, target, note)
        self.rows.append(row)
        return row

    def value(self, name: str, value: float, unit: str, target: Target | None = None,
              note: str = "") -> Row:
        return self.add(name, Summary.of([value], unit), target, note)


def fmt(value: float) -> str:
    """Three significant figures or so, without scientific notation."""
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def markdown(sections: list[Section]) -> str:
    lines = ["| measurement | n | min | median | p95 | max | unit | target | verdict |",
             "|---|---:|---:|---:|---:|---:|---|---|---|"]
    for section in sections:
        if not section.rows:
            continue  # notes only (a skipped or failed measurement, the clean-up)
        lines.append(f"| **{section.title}** | | | | | | | | |")
        for row in section.rows:
            s = row.summary
            if s.n == 1:
                cells = ["1", "", fmt(s.median), "", ""]
            else:
                cells = [str(s.n), fmt(s.min), fmt(s.median), fmt(s.p95), fmt(s.max)]
            target = row.target.text(s.unit) if row.target else ""
            verdict = row.target.verdict(row.target.judged(s)) if row.target else ""
            name = row.name + (f" ({row.note})" if row.note else "")
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {s.unit} | {target} | "
                         f"{verdict} |")
    notes = [f"- {s.title}: {n}" for s in sections for n in s.notes]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


def targets(sections: list[Section]) -> str:
    """Every row with a target, one line each: what was asked, what was measured, the
    verdict (the run's "where we stand")."""
    lines = ["| target | measured | verdict |", "|---|---:|---|"]
    for section in sections:
        for row in section.rows:
            if row.target is None:
                continue
            s = row.summary
            value = row.target.judged(s)
            spread = "" if s.n == 1 else f" (min {fmt(s.min)}, p95 {fmt(s.p95)}, n {s.n})"
            lines.append(f"| {section.title}: {row.name} {row.target.text(s.unit)} | "
                         f"{row.target.statistic} {fmt(value)} {s.unit}{spread} | "
                         f"{row.target.verdict(value)} |")
    return "\n".join(lines) + "\n"


def machine() -> dict[str, Any]:
    """What the figures depend on: CPU, cores, memory, kernel, distribution, Python, load."""
    def read(path: str) -> str:
        try:
            return Path(path).read_text()
        except OSError:
            return ""
    cpu = next((line.split(":", 1)[1].strip() for line in read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.machine())
    mem_kb = next((int(line.split()[1]) for line in read("/proc/meminfo").splitlines()
                   if line.startswith("MemTotal:")), 0)
    os_name = next((line.split("=", 1)[1].strip().strip('"')
                    for line in read("/etc/os-release").splitlines()
                    if line.startswith("PRETTY_NAME=")), platform.system())
    import os
    cgroup = "v2" if not Path("/sys/fs/cgroup/memory").is_dir() else "v1 (hybrid)"
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kb / 2**20, 1),
            "kernel": platform.release(), "os": os_name,
            "python": platform.python_version(), "cgroups": cgroup,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def machine_line(info: dict[str, Any]) -> str:
    return (f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, {info['os']}, "
            f"kernel {info['kernel']}, Python {info['python']}, cgroups {info['cgroups']}; "
            f"load average at start {info['load_average_at_start']}; {info['date']}")


def to_json(sections: list[Section], info: dict[str, Any], args: dict[str, Any]) -> str:
    return json.dumps({"machine": info, "args": args,
                       "sections": [{"title": s.title, "seconds": round(s.seconds, 1),
                                     "rows": [r.as_dict() for r in s.rows], "notes": s.notes}
                                    for s in sections]}, indent=2)
