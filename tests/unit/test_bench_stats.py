"""The benchmark's statistics and table code (figures themselves are never asserted)."""

import json

import pytest

from scripts.benchmark.profile import breakdown
from scripts.benchmark.report import Section, Target, fmt, markdown, targets, to_json
from scripts.benchmark.stats import Summary, percentile, ratio, scaled


def test_percentile_interpolates_between_closest_ranks():
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile([10], 0.95) == 10
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.95) == pytest.approx(9.55)
    assert percentile([3, 1, 2], 0.0) == 1 and percentile([3, 1, 2], 1.0) == 3


def test_percentile_rejects_empty_and_out_of_range():
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match="within 0..1"):
        percentile([1], 1.5)


def test_summary_of_unsorted_samples():
    s = Summary.of([5.0, 1.0, 3.0], "ms")
    assert (s.n, s.min, s.median, s.max, s.unit) == (3, 1.0, 3.0, 5.0, "ms")
    assert s.min <= s.p95 <= s.max
    assert s.as_dict()["median"] == 3.0
    with pytest.raises(ValueError):
        Summary.of([], "ms")


def test_ratio_compares_medians_and_refuses_zero():
    assert ratio(Summary.of([2, 4, 6], "ms"), Summary.of([1, 2, 3], "ms")) == 2
    assert ratio(Summary.of([1], "ms"), Summary.of([0], "ms")) is None
    assert scaled([0.5, 1.0], 1000) == [500.0, 1000.0]


def test_target_verdicts_say_by_how_much():
    assert Target(18).verdict(12) == "met"
    assert Target(18).verdict(36) == "missed by 2.00x"
    assert Target(10, at_most=False).verdict(12) == "met"
    assert Target(10, at_most=False).verdict(4) == "missed by 2.50x"
    assert Target(2).text("s") == "≤ 2.00 s"


def test_a_p95_target_is_judged_on_the_p95():
    tail = Target(5, statistic="p95")
    summary = Summary.of([1, 1, 1, 1, 1, 1, 1, 1, 1, 20], "ms")
    assert tail.judged(summary) == summary.p95 and tail.verdict(tail.judged(summary)) \
        .startswith("missed by")
    assert tail.text("ms") == "p95 ≤ 5.00 ms"
    section = Section("API")
    section.add("watch", summary, tail)
    assert "missed by" in markdown([section])


def test_targets_table_lists_every_row_with_a_target():
    section = Section("Pod start")
    section.add("cold", Summary.of([10, 20, 30], "ms"), Target(18))
    section.add("no target", Summary.of([1], "ms"))
    section.value("creates", 2500, "/s", Target(2000, at_most=False))
    table = targets([section])
    assert "| Pod start: cold ≤ 18.0 ms | median 20.0 ms (min 10.0, p95 29.0, n 3) | " \
        "missed by 1.11x |" in table
    assert "creates ≥ 2000 /s | median 2500 /s | met |" in table
    assert "no target" not in table


def test_fmt_keeps_about_three_figures():
    assert [fmt(x) for x in (1234.5, 12.345, 1.2345, 0.012345)] == \
        ["1234", "12.3", "1.23", "0.012"]


def test_markdown_table_has_a_row_per_figure_and_notes():
    section = Section("Pod start")
    section.add("tinykube", Summary.of([10, 20, 30], "ms"), Target(18))
    section.value("ratio", 2.5, "x")
    section.notes.append("no Podman column")
    table = markdown([section])
    lines = table.splitlines()
    assert lines[0].startswith("| measurement | n | min | median | p95 | max |")
    assert "| **Pod start** |" in table
    assert "| tinykube | 3 | 10.0 | 20.0 |" in table and "missed by 1.11x" in table
    assert "| ratio | 1 |  | 2.50 |" in table  # a single value fills only the median
    assert "- Pod start: no Podman column" in table


def test_json_carries_rows_machine_and_args():
    section = Section("Recovery")
    section.add("restart", Summary.of([0.04, 0.05], "s"), Target(0.05))
    data = json.loads(to_json([section], {"cpu": "x"}, {"quick": True}))
    row = data["sections"][0]["rows"][0]
    assert row["name"] == "restart" and row["n"] == 2 and row["verdict"] == "met"
    assert data["machine"] == {"cpu": "x"} and data["args"] == {"quick": True}


def test_profile_breakdown_sums_to_the_total():
    uid = "0123abcd-0000-0000-0000-000000000000"
    spans = [
        {"uid": uid, "phase": "store write Pod ADDED (fsync)", "start": 1.000, "end": 1.004},
        {"uid": uid, "phase": "kubelet observe", "start": 1.005, "end": 1.006},
        {"uid": uid, "phase": "sandbox (pause)", "start": 1.010, "end": 1.040},
        {"uid": uid, "phase": "  fork + exec pause", "start": 1.012, "end": 1.038},
        {"uid": "0123abcd", "phase": "  veth create", "start": 1.041, "end": 1.045},
        {"uid": uid, "phase": "store write Pod MODIFIED", "start": 1.090, "end": 1.092},
        {"uid": "someone-else", "phase": "sandbox (pause)", "start": 1.01, "end": 1.05},
    ]
    phases = breakdown(spans, uid, sent=0.999, seen=1.100)
    assert phases["api (request → Pod stored)"] == pytest.approx(5.0)
    assert phases["dispatch (watch → pod worker)"] == pytest.approx(1.0)
    assert phases["sandbox (pause)"] == pytest.approx(30.0)
    assert phases["  fork + exec pause"] == pytest.approx(26.0)
    assert phases["  veth create"] == pytest.approx(4.0)  # matched by the uid's prefix
    assert phases["delivery (status write → benchmark's watch)"] == pytest.approx(8.0)
    top = sum(v for k, v in phases.items() if not k.startswith(" ") and not k.startswith("total"))
    assert top == pytest.approx(phases["total (create sent → Running seen)"]) == \
        pytest.approx(101.0)
