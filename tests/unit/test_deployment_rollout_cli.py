"""`tinykube rollout`: kubectl's status lines, history, undo's choice of revision, and the
commands end to end against an in-memory fake of the client."""

import argparse
import copy

import pytest

from tinykube.cli import rollout
from tinykube.cli.main import build_parser
from tinykube.controllers.deployment import util
from tinykube.model.errors import NotFound


def dep(generation=2, observed=2, want=6, **status):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d1",
                         "generation": generation, "resourceVersion": "5",
                         "annotations": {util.REVISION: "2"}},
            "spec": {"replicas": want, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {}}},
            "status": {"observedGeneration": observed, **status}}


@pytest.mark.parametrize("status, expected", [
    ({"updatedReplicas": 2, "replicas": 8, "availableReplicas": 5},
     ('Waiting for deployment "web" rollout to finish: 2 out of 6 new replicas have been '
     "updated...")),
    ({"updatedReplicas": 6, "replicas": 7, "availableReplicas": 5},
     ('Waiting for deployment "web" rollout to finish: 1 old replicas are pending '
     "termination...")),
    ({"updatedReplicas": 6, "replicas": 6, "availableReplicas": 3},
     ('Waiting for deployment "web" rollout to finish: 3 of 6 updated replicas are '
     "available...")),
    ({"updatedReplicas": 6, "replicas": 6, "availableReplicas": 6},
     'deployment "web" successfully rolled out'),
])
def test_deployment_status_lines(status, expected):
    message, done = rollout.deployment_status(dep(**status))
    assert message == expected
    assert done == expected.startswith("deployment")


def test_deployment_status_waits_for_observed_generation_and_reports_deadline():
    assert rollout.deployment_status(dep(generation=3, observed=2)) == (
        "Waiting for deployment spec update to be observed...", False)
    d = dep(conditions=[{"type": "Progressing", "status": "False",
                         "reason": "ProgressDeadlineExceeded"}])
    with pytest.raises(rollout.RolloutError,
                       match='^deployment "web" exceeded its progress deadline$'):
        rollout.deployment_status(d)
    with pytest.raises(rollout.RolloutError, match=r"desired revision \(3\) is different"):
        rollout.deployment_status(dep(), revision=3)


def sts(replicas=3, partition=None, strategy="RollingUpdate", generation=1, **status):
    update = {"type": strategy}
    if partition is not None:
        update["rollingUpdate"] = {"partition": partition}
    return {"kind": "StatefulSet", "metadata": {"name": "db", "generation": generation},
            "spec": {"replicas": replicas, "updateStrategy": update},
            "status": {"observedGeneration": 1, **status}}


def test_statefulset_status_lines():
    assert rollout.statefulset_status(sts(readyReplicas=2)) == (
        "Waiting for 1 pods to be ready...", False)
    assert rollout.statefulset_status(sts(readyReplicas=3, updatedReplicas=1, partition=1)) == (
        "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated...",
        False)
    assert rollout.statefulset_status(sts(readyReplicas=3, updatedReplicas=3)) == (
        "partitioned roll out complete: 3 new pods have been updated...", True)
    assert rollout.statefulset_status(sts(generation=2, readyReplicas=3))[0] == \
        "Waiting for statefulset spec update to be observed..."
    with pytest.raises(rollout.RolloutError, match="only available for RollingUpdate"):
        rollout.statefulset_status(sts(strategy="OnDelete"))


def test_parse_target():
    assert rollout.parse_target("deploy/web", None)[1] == "web"
    assert rollout.parse_target("statefulsets.apps", "db")[0].kind == "StatefulSet"
    with pytest.raises(rollout.RolloutError, match="only deployments and statefulsets"):
        rollout.parse_target("rs/web", None)
    with pytest.raises(rollout.RolloutError, match="you must specify a resource"):
        rollout.parse_target("deployment", None)


# ---- a fake client: enough of tinykube.client.Client for the rollout commands -------------

class FakeClient:
    def __init__(self, *objs):
        self.objs = {(o["kind"], o["metadata"]["name"]): copy.deepcopy(o) for o in objs}
        self.updates = []

    def get(self, kind, name, namespace="default"):
        kind = getattr(kind, "kind", kind)
        try:
            return copy.deepcopy(self.objs[(kind, name)])
        except KeyError:
            raise NotFound.for_object(kind, name) from None

    def list(self, kind, namespace="default", label_selector=None):
        kind = getattr(kind, "kind", kind)
        return [copy.deepcopy(o) for (k, _), o in self.objs.items() if k == kind]

    def update(self, obj):
        self.updates.append(copy.deepcopy(obj))
        self.objs[(obj["kind"], obj["metadata"]["name"])] = copy.deepcopy(obj)
        return obj

    def watch(self, kind, namespace="default", name=None, idle_timeout=None, **_):
        yield "MODIFIED", self.get(kind, name)


def template(cmd, h=None, cause=None):
    tpl = {"metadata": {"labels": {"app": "web"}},
           "spec": {"containers": [{"name": "app", "command": ["sleep", cmd]}]}}
    if h:
        tpl["metadata"]["labels"][util.HASH_LABEL] = h
    return tpl


def replica_set(rev, cmd, cause=None, owner="d1"):
    h = util.template_hash(template(cmd))
    ann = {util.REVISION: str(rev), util.DESIRED_REPLICAS: "6"}
    if cause:
        ann[util.CHANGE_CAUSE] = cause
    return {"kind": "ReplicaSet",
            "metadata": {"name": f"web-{h}", "annotations": ann,
                         "ownerReferences": [{"uid": owner, "controller": True}]},
            "spec": {"replicas": 0, "template": template(cmd, h)}}


def cluster(paused=False, current="2"):
    d = dep(updatedReplicas=6, replicas=6, availableReplicas=6)
    d["spec"]["template"] = template(current)
    d["spec"]["paused"] = paused
    d["metadata"]["annotations"][util.CHANGE_CAUSE] = "now v2"
    return FakeClient(d, replica_set(1, "1", "first"), replica_set(2, "2", "now v2"),
                      replica_set(3, "0", owner="someone-else"))


def run(client, *argv):
    args = build_parser().parse_args(["rollout", *argv])
    return args.handler(args, client)


def test_history_table_and_revision(capsys):
    client = cluster()
    assert run(client, "history", "deployment/web") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "deployment.apps/web"
    assert out[1].split() == ["REVISION", "CHANGE-CAUSE"]
    assert out[2].split() == ["1", "first"] and out[3].split() == ["2", "now", "v2"]
    assert len(out) == 4  # the RS of another owner is not history
    assert run(client, "history", "deploy/web", "--revision", "1") == 0
    out = capsys.readouterr().out
    assert out.startswith("deployment.apps/web with revision #1\nPod Template:\n")
    assert "kubernetes.io/change-cause: first" in out and "      sleep\n      1" in out
    assert run(client, "history", "deploy/web", "--revision", "9") == 1
    assert "unable to find the specified revision" in capsys.readouterr().err


def test_undo_to_previous_and_to_revision(capsys):
    client = cluster()
    assert run(client, "undo", "deployment/web") == 0
    assert capsys.readouterr().out.strip() == "deployment.apps/web rolled back"
    updated = client.updates[-1]
    assert updated["spec"]["template"] == template("1")  # hash label stripped
    assert updated["metadata"]["annotations"] == {util.REVISION: "2",
                                                  util.CHANGE_CAUSE: "first"}
    assert updated["metadata"]["resourceVersion"] == "5"  # the write is conditional
    assert run(client, "undo", "deployment/web", "--to-revision", "1") == 0
    assert "skipped rollback (current template already matches revision 1)" in \
        capsys.readouterr().out
    assert run(client, "undo", "deployment/web", "--to-revision", "7") == 1
    assert capsys.readouterr().err.strip() == \
        "error: unable to find specified revision 7 in history"


@pytest.mark.parametrize("kind", ["deployment", "statefulset"])
@pytest.mark.parametrize("revision", ["-1", "-3"])
def test_undo_to_a_negative_revision_is_not_found(capsys, kind, revision):
    """kubectl's rollbackers refuse toRevision < 0 before anything else (paused included);
    it is not "the previous revision"."""
    client = cluster(paused=True)
    client.objs[("StatefulSet", "web")] = {"kind": "StatefulSet", "metadata": {"name": "web"}}
    assert run(client, "undo", f"{kind}/web", f"--to-revision={revision}") == 1
    assert capsys.readouterr().err.strip() == \
        f"error: unable to find specified revision {revision} in history"
    assert not client.updates


def test_undo_refuses_paused(capsys):
    assert run(cluster(paused=True), "undo", "deployment/web") == 1
    assert capsys.readouterr().err.strip() == (
        "error: you cannot rollback a paused deployment; resume it first with "
        "'tinykube rollout resume deployment.apps/web' and try again")


def test_undo_without_history(capsys):
    d = dep()
    assert run(FakeClient(d), "undo", "deployment/web") == 1
    assert 'no rollout history found for deployment "web"' in capsys.readouterr().err


def test_restart_pause_resume(capsys):
    client = cluster()
    assert run(client, "restart", "deployment/web") == 0
    annotations = client.updates[-1]["spec"]["template"]["metadata"]["annotations"]
    assert rollout.RESTARTED_AT in annotations
    assert run(client, "pause", "deployment/web") == 0
    assert client.updates[-1]["spec"]["paused"] is True
    assert run(client, "pause", "deployment/web") == 1
    assert run(client, "restart", "deployment/web") == 1
    assert run(client, "resume", "deployment/web") == 0
    assert client.updates[-1]["spec"]["paused"] is False
    assert run(client, "resume", "deployment/web") == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == ["deployment.apps/web restarted", "deployment.apps/web paused",
                                "deployment.apps/web resumed"]
    assert err.splitlines() == [
        'error: deployments.apps "web" is already paused',
        "error: can't restart paused deployment (run rollout resume first)",
        'error: deployments.apps "web" is not paused']


def test_status_command(capsys):
    done = FakeClient(dep(updatedReplicas=6, replicas=6, availableReplicas=6))
    assert run(done, "status", "deployment/web") == 0
    assert capsys.readouterr().out == 'deployment "web" successfully rolled out\n'
    stuck = FakeClient(dep(updatedReplicas=6, replicas=6, availableReplicas=6, conditions=[
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]))
    assert run(stuck, "status", "deployment/web") == 1
    assert capsys.readouterr().err == \
        'error: deployment "web" exceeded its progress deadline\n'
    pending = FakeClient(dep(updatedReplicas=2, replicas=8, availableReplicas=5))
    assert run(pending, "status", "deployment/web", "--no-watch") == 0
    assert "2 out of 6 new replicas" in capsys.readouterr().out


def test_statefulset_history_and_undo(capsys):
    s = {"apiVersion": "apps/v1", "kind": "StatefulSet",
         "metadata": {"name": "db", "namespace": "default", "uid": "s1", "generation": 2},
         "spec": {"replicas": 2, "template": template("2")}, "status": {}}
    revs = [{"kind": "ControllerRevision", "revision": n,
             "metadata": {"name": f"db-{n}", "ownerReferences": [{"uid": "s1",
                                                                  "controller": True}]},
             "data": template(str(n))} for n in (1, 2)]
    client = FakeClient(s, *revs)
    assert run(client, "history", "sts/db") == 0
    assert capsys.readouterr().out.splitlines()[0] == "statefulset.apps/db"
    assert run(client, "undo", "statefulset/db") == 0
    assert client.updates[-1]["spec"]["template"] == template("1")
    assert run(client, "pause", "sts/db") == 1
    assert 'statefulsets.apps "db" pausing is not supported' in capsys.readouterr().err


def test_register_adds_every_subcommand():
    parser = argparse.ArgumentParser()
    rollout.register(parser.add_subparsers())
    for cmd in ("status", "history", "undo", "restart", "pause", "resume"):
        assert parser.parse_args(["rollout", cmd, "deploy/web"]).handler
