"""`tinykube delete` and `describe` with objects that are gone or named by a prefix, as
kubectl does."""

from __future__ import annotations

import pytest

from tinykube.cli.common import UsageError
from tinykube.cli.main import build_parser
from tinykube.model.errors import NotFound


class Cluster:
    """Lists what was there; by the time of the delete, `gone` were removed (a cascade)."""

    def __init__(self, listed: dict[str, list[str]], gone: set[str]) -> None:
        self.listed, self.gone, self.deleted = listed, gone, []

    def list(self, info, namespace, selector=None):
        return [{"metadata": {"name": n}} for n in self.listed.get(info.kind, [])]

    def delete(self, info, name, namespace, **_):
        if name in self.gone:
            raise NotFound.for_object(info.kind, name)
        self.deleted.append(name)
        return {"metadata": {"name": name, "uid": f"uid-{name}"}}


def run(cluster: Cluster, *argv: str) -> int:
    args = build_parser().parse_args(["delete", *argv, "--wait=false"])
    return args.handler(args, cluster)


def test_all_treats_not_found_as_deleted(capsys):
    """`delete deploy,pods --all`: the pods the Deployment's cascade already removed are not
    errors (kubectl defaults --ignore-not-found to true with --all)."""
    cluster = Cluster({"Deployment": ["web"], "Pod": ["web-1", "web-2", "solo"]},
                      gone={"web-1", "web-2"})
    assert run(cluster, "deploy,pods", "--all") == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines() == ['deployment.apps "web" deleted', 'pod "solo" deleted']


@pytest.mark.parametrize("argv", [["pods", "-l", "app=web"], ["pods", "--all"]])
def test_selector_too_and_an_explicit_false_restores_the_error(capsys, argv):
    cluster = Cluster({"Pod": ["web-1"]}, gone={"web-1"})
    assert run(cluster, *argv) == 0
    assert capsys.readouterr().err == ""
    assert run(cluster, *argv, "--ignore-not-found=false") == 1
    assert capsys.readouterr().err.strip() == 'Error from server (NotFound): pods "web-1" not found'


def test_named_objects_still_report_not_found(capsys):
    cluster = Cluster({}, gone={"nope"})
    assert run(cluster, "pod", "nope") == 1
    assert 'pods "nope" not found' in capsys.readouterr().err
    assert run(cluster, "pod", "nope", "--ignore-not-found") == 0
    assert capsys.readouterr().err == ""


class Described:
    """Enough of a client for `describe`: pods web-1, web-2 and db."""

    names = ("web-1", "web-2", "db")

    def _pod(self, name):
        return {"kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                "spec": {"containers": []}, "status": {"phase": "Running"}}

    def get(self, info, name, namespace="default"):
        if name not in self.names:
            raise NotFound.for_object(info.kind, name)
        return self._pod(name)

    def list(self, info, namespace="default", selector=None):
        return [self._pod(n) for n in self.names]

    def events(self, obj):
        return []


def describe(*argv: str) -> int:
    args = build_parser().parse_args(["describe", *argv])
    return args.handler(args, Described())


def test_describe_a_name_prefix_describes_every_match(capsys):
    """kubectl's DescribeMatchingResources: no object named `web`, so every pod whose name
    starts with it, separated by two blank lines; no match at all is still NotFound."""
    assert describe("pods", "web") == 0
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("Name:")] == [
        "web-1", "web-2"]
    assert out.count("\n\n\nName:") == 1  # kubectl's separator between two descriptions
    with pytest.raises(NotFound):
        describe("pods", "nothing")
    assert describe("pod", "db") == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ["Name:", "db"]


def test_describe_all_namespaces(capsys):
    class Everywhere(Described):
        def list(self, info, namespace="default", selector=None):
            self.asked = namespace
            return super().list(info, namespace, selector)
    client = Everywhere()
    args = build_parser().parse_args(["describe", "pods", "-A"])
    assert args.handler(args, client) == 0 and client.asked == "*"
    assert capsys.readouterr().out.count("Name:") == 3
    with pytest.raises(UsageError):
        args = build_parser().parse_args(["describe", "pods", "web-1", "-A"])
        args.handler(args, client)
