"""scripts/bench-ab's maths: figures of a run, medians over rounds, ratios, verdicts, table."""

import json

import pytest

from scripts.benchmark.ab import parse_args
from scripts.benchmark.abtable import Line, compare, figures, markdown
from scripts.benchmark.report import Section, to_json
from scripts.benchmark.stats import Summary


def run(start_ms: float, creates: float, extra: bool = False) -> dict:
    """A run as `scripts/bench --json` writes it."""
    start = Section("Pod start")
    start.add("tinykube cold: create → running", Summary.of([start_ms, start_ms + 1], "ms"))
    api = Section("API")
    api.add("  creates per second", Summary.of([creates], "/s"))
    if extra:
        api.add("a row only this run has", Summary.of([1.0], "s"))
    return json.loads(to_json([start, api], {}, {}))


def test_figures_reads_each_rows_median_and_unit_keyed_by_section():
    assert figures(run(10, 2000)) == {
        "Pod start: tinykube cold: create → running": (10.5, "ms"),
        "API: creates per second": (2000.0, "/s"),
    }


def test_compare_takes_the_median_of_the_rounds_and_the_ratio_new_over_old():
    old = [run(10, 1000), run(12, 1200), run(30, 1100)]
    new = [run(20, 2000), run(22, 2200), run(21, 2100)]
    start, creates = compare(old, new)
    assert start.old == [10.5, 12.5, 30.5] and start.old_median == 12.5
    assert start.new_median == 21.5
    assert start.ratio == pytest.approx(21.5 / 12.5)
    assert creates.ratio == pytest.approx(2100 / 1100)


def test_a_measured_value_in_a_rows_name_does_not_split_the_figure():
    def with_rss(rss: str) -> dict:
        section = Section("Scale")
        section.add(f"  pause per pod, PSS (RSS {rss} MB)", Summary.of([0.05], "MB"))
        return json.loads(to_json([section], {}, {}))

    (line,) = compare([with_rss("0.68")], [with_rss("0.71")])
    assert line.figure == "Scale: pause per pod, PSS"


def test_compare_keeps_only_figures_every_run_of_both_sides_has():
    lines = compare([run(10, 1, extra=True)], [run(10, 1)])
    assert [line.figure for line in lines] == ["Pod start: tinykube cold: create → running",
                                               "API: creates per second"]
    assert compare([], [run(10, 1)]) == []


def test_verdict_needs_ranges_that_do_not_overlap_and_knows_which_way_is_better():
    assert Line("t", "ms", [10, 12], [11, 13]).verdict == "within noise"
    assert Line("t", "ms", [10, 12], [13, 14]).verdict == "new worse"
    assert Line("t", "ms", [10, 12], [8, 9]).verdict == "new better"
    assert Line("r", "/s", [100, 120], [130, 140]).verdict == "new better"
    assert Line("r", "/s", [100, 120], [80, 90]).verdict == "new worse"
    assert Line("t", "ms", [10], [20]).verdict == "one round: no verdict"


def test_ratio_is_none_when_old_is_zero():
    assert Line("x", "s", [0.0], [1.0]).ratio is None


def test_markdown_has_one_row_per_figure_with_ranges_and_ratio():
    text = markdown([Line("API: creates", "/s", [1000, 1100, 1200], [2000, 2100, 2200]),
                     Line("zero", "s", [0.0, 0.0], [0.0, 0.0])])
    rows = text.splitlines()
    assert len(rows) == 4
    assert rows[2] == ("| API: creates | /s | 1100 (1000..1200) | 2100 (2000..2200) | 1.91 "
                       "| new better |")
    assert rows[3].endswith("| n/a | within noise |")


def test_parse_args_defaults_and_rejects_no_rounds():
    args = parse_args(["207c4bf"])
    assert (args.rev, args.rounds, args.only) == ("207c4bf", 3, "start,api,store,scale,rollout")
    with pytest.raises(SystemExit):
        parse_args(["207c4bf", "--rounds", "0"])
