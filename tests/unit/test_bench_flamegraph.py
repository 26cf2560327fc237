"""`scripts/bench --profile NAME,...`: which flame graphs a run records, and reading the
heaviest functions back out of py-spy's SVG (figures themselves are never asserted)."""

import pytest

from scripts.benchmark import flamegraph
from scripts.benchmark.__main__ import PROFILED_BY, parse_args
from scripts.benchmark.context import Context


def frame(title: str, samples: int, depth: int, x: int) -> str:
    """One py-spy SVG frame: rows are 16 px apart, the root's row first."""
    return (f'<g><title>{title} ({samples:,} samples, {samples / 10:.2f}%)</title><rect x="0%" '
            f'y="{52 + 16 * depth}" width="1%" height="15" fill="red" fg:x="{x}" '
            f'fg:w="{samples}"/></g>')


# all 1000: main 900 [ _find_and_load 300 [ <module> podnet 250 [ <module> pyroute2 200 ] ],
#                      Kubelet.run 500 [ clone 400 ] ], thread 100 (all its own)
SVG = "<svg>" + "".join([
    frame("all", 1000, 0, 0),
    frame("main (tinykube/daemon.py:187)", 900, 1, 0),
    frame("_find_and_load (&lt;frozen importlib._bootstrap&gt;:1165)", 300, 2, 0),
    frame("&lt;module&gt; (netns/podnet.py:1)", 250, 3, 0),
    frame("&lt;module&gt; (pyroute2/__init__.py:1)", 200, 4, 0),
    frame("Kubelet.run (runtime/kubelet.py:90)", 500, 2, 300),
    frame("clone (tinykube/store/base.py:57)", 400, 3, 300),
    frame("Thread.run (threading.py:971)", 100, 1, 900),
]) + "</svg>"
PROJECT = ("tinykube/", "runtime/", "netns/")


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


def test_where_time_goes_splits_own_time_by_imports_files_and_packages():
    spent = dict(flamegraph.where_time_goes(SVG, 10, PROJECT))
    # everything under an import is "imports": podnet's 50 own + pyroute2's 200 + 50 of
    # _find_and_load itself
    assert spent["imports"] == 30.0
    assert spent["tinykube/store/base.py"] == 40.0  # clone's own samples
    assert spent["runtime/kubelet.py"] == 10.0  # Kubelet.run less its callee
    assert spent["tinykube/daemon.py"] == 10.0  # main: 900 - 300 - 500
    assert spent["threading"] == 10.0  # not the project's: by package
    assert sum(spent.values()) == 100.0


def test_where_time_goes_largest_first_and_counted():
    spent = flamegraph.where_time_goes(SVG, 2, PROJECT)
    assert [place for place, _ in spent] == ["tinykube/store/base.py", "imports"]


def test_where_time_goes_without_project_uses_packages():
    spent = dict(flamegraph.where_time_goes(SVG, 10))
    assert spent["tinykube"] == 50.0 and spent["runtime"] == 10.0


def test_where_time_goes_of_an_empty_graph():
    assert flamegraph.where_time_goes("<svg></svg>") == []


def test_spawn_command_runs_the_daemon_under_py_spy(tmp_path):
    out = tmp_path / "f.svg"
    cmd = flamegraph.spawn_command(out, ["python", "-m", "tinykube.cli.main", "daemon"])
    assert cmd[cmd.index("--output") + 1] == str(out)
    assert cmd[cmd.index("--") + 1:] == ["python", "-m", "tinykube.cli.main", "daemon"]
