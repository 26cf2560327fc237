"""The pytest plugin's pure parts: the root rule, daemon names per xdist worker, what
"Ready" means per kind, and how apply reads its argument. (Against a real daemon:
tests/integration/test_pytest_plugin.py and examples/pytest.)"""

import pytest

from tinykube.testing import plugin
from tinykube.testing.cluster import _documents
from tinykube.testing.readiness import is_ready, why_not_ready


def test_not_root_skips_saying_why(monkeypatch):
    monkeypatch.setattr(plugin.os, "geteuid", lambda: 1000)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs root: tinykube runs real pods"):
        plugin.require_root()


def test_not_root_under_ci_fails(monkeypatch):
    monkeypatch.setattr(plugin.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        plugin.require_root()


def test_daemon_names_differ_per_xdist_worker_and_fit_a_link_name(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw13")
    tag = plugin.daemon_tag("ex")
    assert tag.startswith("exw13") and len("tkd" + tag) <= 15
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert plugin.daemon_tag().startswith("m")
    with pytest.raises(pytest.UsageError, match="tinykube_name_tag"):
        plugin.daemon_tag("a-b")


def _deployment(replicas, updated, available, total, generation=1, observed=1):
    return {"kind": "Deployment", "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "updatedReplicas": updated,
                       "availableReplicas": available, "replicas": total}}


def test_a_deployment_is_ready_once_rolled_out():
    assert is_ready(_deployment(2, 2, 2, 2))
    assert not is_ready(_deployment(2, 1, 2, 3))  # an old pod still there
    assert not is_ready(_deployment(2, 2, 2, 2, generation=2))  # the edit not seen yet
    assert "1 old replicas are pending termination" in why_not_ready(_deployment(2, 2, 2, 3))


def test_a_statefulset_replicaset_and_pod_ready():
    sts = {"kind": "StatefulSet", "metadata": {"name": "db", "generation": 1},
           "spec": {"replicas": 2}, "status": {"observedGeneration": 1, "readyReplicas": 1,
                                               "updatedReplicas": 2}}
    assert not is_ready(sts)
    sts["status"]["readyReplicas"] = 2
    assert is_ready(sts)
    rs = {"kind": "ReplicaSet", "metadata": {"name": "r", "generation": 1}, "spec": {"replicas": 1},
          "status": {"observedGeneration": 1, "readyReplicas": 1, "replicas": 1}}
    assert is_ready(rs)
    pod = {"kind": "Pod", "metadata": {"name": "p"},
           "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                      "containerStatuses": [{"name": "c", "ready": False,
                                             "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    assert not is_ready(pod)
    assert why_not_ready(pod) == "phase Running (c: CrashLoopBackOff)"
    assert is_ready({"kind": "Service", "metadata": {"name": "s"}})


def test_apply_reads_paths_yaml_text_dicts_and_lists(tmp_path):
    (tmp_path / "a.yaml").write_text("kind: Pod\napiVersion: v1\nmetadata: {name: a}\n")
    obj = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "b"}}
    docs = _documents([tmp_path / "a.yaml", str(tmp_path / "a.yaml"), obj,
                       "kind: Pod\napiVersion: v1\nmetadata: {name: c}\n---\n"
                       "kind: Pod\napiVersion: v1\nmetadata: {name: d}\n", tmp_path])
    assert [d["metadata"]["name"] for d in docs] == ["a", "a", "b", "c", "d", "a"]
    docs[2]["metadata"]["namespace"] = "x"
    assert "namespace" not in obj["metadata"]  # the caller's dict is never changed
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        _documents("missing.yaml")
