"""`scripts/bench --profile NAME,...`: which flame graphs a run records, and reading the
heaviest functions back out of py-spy's SVG (figures themselves are never asserted)."""

import pytest

from scripts.benchmark import flamegraph
from scripts.benchmark.__main__ import PROFILED_BY, parse_args
from scripts.benchmark.context import Context

SVG = """<svg><g id="frames">
<g><title>all (1,000 samples, 100%)</title><rect/></g>
<g><title>run (trio/_core/_run.py:2424) (900 samples, 90.00%)</title><rect/></g>
<g><title>Kubelet._observe (runtime/kubelet.py:120) (300 samples, 30.00%)</title><rect/></g>
<g><title>Kubelet._observe (runtime/kubelet.py:120) (100 samples, 10.00%)</title><rect/></g>
<g><title>Store._commit (tinykube/store/sqlite.py:80) (250 samples, 25.00%)</title><rect/></g>
<g><title>&lt;module&gt; (netns/podnet.py:1) (50 samples, 5.00%)</title><rect/></g>
</g></svg>"""


def ctx(profiles: list[str]) -> Context:
    return Context(repeat=1, quick=True, pod_counts=[1], podman=False, idle_seconds=0,
                   restart_pods=1, profiles=profiles)


def test_bare_profile_is_the_scale_out_and_names_are_checked():
    assert parse_args(["--profile"]).profile == ["scaleout"]
    assert parse_args([]).profile == []
    assert parse_args(["--profile", "restart,api-creates"]).profile == ["restart", "api-creates"]
    assert parse_args(["--profile", "all"]).profile == list(flamegraph.PROFILES)


def test_unknown_profile_name_is_refused_naming_it(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--profile", "start-cold,nope"])
    err = capsys.readouterr().err
    assert "--profile" in err and "nope" in err and "start-cold" in err


def test_every_profile_belongs_to_one_measurement():
    owned = [name for names in PROFILED_BY.values() for name in names]
    assert sorted(owned) == sorted(flamegraph.PROFILES)


def test_flame_path_only_for_asked_profiles(tmp_path):
    c = ctx(["restart"])
    c.profile_dir = tmp_path
    assert c.flame("restart") == tmp_path / "flamegraph-restart.svg"
    assert c.flame("scaleout") is None


def test_profiling_is_a_no_op_when_not_asked(tmp_path):
    c = ctx([])
    c.profile_dir = tmp_path
    with c.profiling("api-watch", pid=1):  # no py-spy started for a part not asked for
        pass
    assert list(tmp_path.iterdir()) == []


def test_hot_frames_sums_a_function_over_its_stacks():
    hot = flamegraph.hot_frames(SVG, 3)
    assert hot[0] == ("run (trio/_core/_run.py:2424)", 90.0)
    assert hot[1] == ("Kubelet._observe (runtime/kubelet.py:120)", 40.0)
    assert hot[2] == ("Store._commit (tinykube/store/sqlite.py:80)", 25.0)


def test_hot_frames_under_folders_skips_the_rest_and_unescapes():
    hot = dict(flamegraph.hot_frames(SVG, 10, ("runtime/", "netns/")))
    assert set(hot) == {"Kubelet._observe (runtime/kubelet.py:120)",
                        "<module> (netns/podnet.py:1)"}
    assert hot["<module> (netns/podnet.py:1)"] == 5.0


def test_hot_frames_of_an_empty_graph():
    assert flamegraph.hot_frames("<svg></svg>") == []


def test_spawn_command_runs_the_daemon_under_py_spy(tmp_path):
    out = tmp_path / "f.svg"
    cmd = flamegraph.spawn_command(out, ["python", "-m", "tinykube.cli.main", "daemon"])
    assert cmd[cmd.index("--output") + 1] == str(out)
    assert cmd[cmd.index("--") + 1:] == ["python", "-m", "tinykube.cli.main", "daemon"]
