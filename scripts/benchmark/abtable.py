"""The maths of `scripts/bench-ab`: per-figure medians over the rounds of each side, the
new/old ratio, and whether the difference is more than the rounds' own spread.

A run's figures come from `scripts/bench --json` (each row's median); a figure's value for a
side is the median of its rounds' medians, and its spread is the range of those.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .stats import percentile

# Units where a larger figure is the better one; every other unit is a time, a size or a
# CPU share, where smaller is better.
HIGHER_IS_BETTER = {"/s"}
# A measured value inside a row's name ("pause per pod, PSS (RSS 0.68 MB)") differs from run
# to run; dropped so the row is the same figure in every run.
_MEASURED_IN_NAME = re.compile(r"\s*\(RSS [^)]*\)")


def figures(run: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """`scripts/bench --json` output → {"section: row": (median, unit)}."""
    out = {}
    for section in run["sections"]:
        for row in section["rows"]:
            name = _MEASURED_IN_NAME.sub("", row["name"]).strip()
            out[f"{section['title']}: {name}"] = (float(row["median"]), row["unit"])
    return out


@dataclass
class Line:
    figure: str
    unit: str
    old: list[float]  # the figure's median in each round, old revision
    new: list[float]

    @property
    def old_median(self) -> float:
        return percentile(self.old, 0.5)

    @property
    def new_median(self) -> float:
        return percentile(self.new, 0.5)

    @property
    def ratio(self) -> float | None:
        """new / old of the medians; None when old is zero."""
        return self.new_median / self.old_median if self.old_median else None

    @property
    def verdict(self) -> str:
        """"new better" / "new worse" only when every round of one side beats every round of
        the other (the ranges do not overlap); otherwise "within noise". Needs two rounds."""
        if len(self.old) < 2 or len(self.new) < 2:
            return "one round: no verdict"  # a single sample has no spread to judge by
        higher_better = self.unit in HIGHER_IS_BETTER
        if max(self.new) < min(self.old):
            return "new worse" if higher_better else "new better"
        if min(self.new) > max(self.old):
            return "new better" if higher_better else "new worse"
        return "within noise"


def compare(old_runs: list[dict[str, Any]], new_runs: list[dict[str, Any]]) -> list[Line]:
    """One line per figure present in every run of both sides, in the first run's order."""
    old_figs = [figures(r) for r in old_runs]
    new_figs = [figures(r) for r in new_runs]
    if not old_figs or not new_figs:
        return []
    lines = []
    for name, (_, unit) in old_figs[0].items():
        if all(name in f for f in old_figs + new_figs):
            lines.append(Line(name, unit, [f[name][0] for f in old_figs],
                              [f[name][0] for f in new_figs]))
    return lines


def _num(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def markdown(lines: list[Line]) -> str:
    out = ["| figure | unit | old median (rounds' range) | new median (rounds' range) "
           "| new/old | verdict |", "|---|---|---|---|---|---|"]
    for line in lines:
        ratio = "n/a" if line.ratio is None else f"{line.ratio:.2f}"
        out.append(f"| {line.figure} | {line.unit} "
                   f"| {_num(line.old_median)} ({_num(min(line.old))}..{_num(max(line.old))}) "
                   f"| {_num(line.new_median)} ({_num(min(line.new))}..{_num(max(line.new))}) "
                   f"| {ratio} | {line.verdict} |")
    return "\n".join(out)
