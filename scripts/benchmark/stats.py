"""Summaries of repeated timings: min / median / p95 / max, and ratios between them.

The machine is noisy, so every figure is a sample of several runs. Percentiles use linear
interpolation between closest ranks (numpy's default, "type 7"), so p95 of a few samples is
between the two largest rather than always the maximum. A ratio compares medians measured in
the same run; comparing against a figure from another run would hide the noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The `fraction` (0..1) percentile by linear interpolation between closest ranks."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within 0..1, got {fraction}")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Summary:
    """A repeated measurement; `unit` is how the figures read ("ms", "s", "MB", "%")."""

    n: int
    min: float
    median: float
    p95: float
    max: float
    unit: str

    @classmethod
    def of(cls, samples: Sequence[float], unit: str) -> Summary:
        if not samples:
            raise ValueError("a summary needs at least one sample")
        return cls(n=len(samples), min=min(samples), median=percentile(samples, 0.5),
                   p95=percentile(samples, 0.95), max=max(samples), unit=unit)

    def as_dict(self) -> dict[str, float | int | str]:
        return {"n": self.n, "min": self.min, "median": self.median, "p95": self.p95,
                "max": self.max, "unit": self.unit}


def ratio(numerator: Summary, denominator: Summary) -> float | None:
    """Median over median; None when the denominator is zero (nothing to compare with)."""
    if denominator.median == 0:
        return None
    return numerator.median / denominator.median


def scaled(samples: Sequence[float], factor: float) -> list[float]:
    """Seconds to milliseconds and the like, kept as a list for `Summary.of`."""
    return [s * factor for s in samples]
