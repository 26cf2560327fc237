"""Errors map to Kubernetes Status objects and back; kinds resolve like kubectl's names."""

import pytest

from tinykube.model import errors, kinds
from tinykube.model.errors import FieldError


def test_invalid_message_and_status_round_trip():
    err = errors.Invalid("Deployment", "web", [
        FieldError.invalid("spec.replicas", -1, "must be greater than or equal to 0")])
    assert str(err) == ('Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: '
                        "must be greater than or equal to 0")
    status = err.status()
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "spec.replicas"
    back = errors.from_status(status)
    assert isinstance(back, errors.Invalid)
    assert back.errors == err.errors and str(back) == str(err)


def test_invalid_with_many_errors_lists_them():
    err = errors.Invalid("Pod", "p", [FieldError.required("spec.containers"),
                                      FieldError.unknown_field("spec.x")])
    assert str(err) == ('Pod "p" is invalid: [spec.containers: Required value, '
                        "spec.x: unknown field]")


@pytest.mark.parametrize("cls, code, reason", [
    (errors.NotFound, 404, "NotFound"),
    (errors.AlreadyExists, 409, "AlreadyExists"),
    (errors.Conflict, 409, "Conflict"),
    (errors.BadRequest, 400, "BadRequest"),
    (errors.Gone, 410, "Expired"),
])
def test_status_codes_and_round_trip(cls, code, reason):
    err = cls("something happened")
    status = err.status()
    assert (status["code"], status["reason"], status["status"]) == (code, reason, "Failure")
    back = errors.from_status(status)
    assert type(back) is cls and back.message == "something happened"


def test_object_messages_use_resource_names():
    assert str(errors.NotFound.for_object("Pod", "x")) == 'pods "x" not found'
    assert str(errors.AlreadyExists.for_object("Deployment", "web")) == (
        'deployments.apps "web" already exists')
    assert "Operation cannot be fulfilled on statefulsets.apps \"db\"" in str(
        errors.Conflict.for_object("StatefulSet", "db"))


def test_field_error_shapes():
    assert str(FieldError.unsupported("spec.x", "A", ["B", "C"])) == (
        'spec.x: Unsupported value: "A": supported values: "B", "C"')
    assert str(FieldError.duplicate("p", "c")) == 'p: Duplicate value: "c"'
    assert str(FieldError.invalid("p", {"a": "b"}, "bad")) == 'p: Invalid value: {"a":"b"}: bad'
    long = FieldError.invalid("p", "x" * 1000, "bad")
    assert len(long.message) < 250


@pytest.mark.parametrize("name, kind", [
    ("po", "Pod"), ("Pods", "Pod"), ("pod", "Pod"), ("POD", "Pod"), ("svc", "Service"),
    ("endpointslices.discovery.k8s.io", "EndpointSlice"),
    ("rc", "ReplicationController"), ("replicationcontrollers", "ReplicationController"),
    ("rs", "ReplicaSet"), ("replicaset", "ReplicaSet"),
    ("deploy", "Deployment"), ("deployments.apps", "Deployment"), ("Deployment", "Deployment"),
    ("sts", "StatefulSet"), ("statefulsets", "StatefulSet"),
    ("pvc", "PersistentVolumeClaim"), ("ev", "Event"),
    ("controllerrevisions", "ControllerRevision"),
])
def test_lookup(name, kind):
    assert kinds.lookup(name).kind == kind


def test_lookup_unknown():
    with pytest.raises(kinds.UnknownKind, match='resource type "horizontalpodautoscalers"'):
        kinds.lookup("horizontalpodautoscalers")


def test_kind_table():
    deploy = kinds.by_kind("Deployment")
    assert (deploy.api_version, deploy.group, deploy.version, deploy.plural) == (
        "apps/v1", "apps", "v1", "deployments")
    assert deploy.resource == "deployments.apps" and deploy.namespaced
    assert kinds.by_plural("", "pods").kind == "Pod"
    assert kinds.by_plural("apps", "statefulsets").kind == "StatefulSet"
    with pytest.raises(kinds.UnknownKind):
        kinds.by_plural("", "deployments")  # wrong group


def test_kind_traits_are_fields_of_the_table():
    by = kinds.by_kind
    assert [k.kind for k in kinds.KINDS if k.workload] == [
        "ReplicationController", "ReplicaSet", "Deployment", "StatefulSet"]
    assert all(k.scalable and k.in_all and k.user for k in kinds.KINDS if k.workload)
    assert by("Pod").in_all and not by("Pod").scalable and by("Pod").wide_columns == ("IP", "NODE")
    assert not by("Event").user and not by("ControllerRevision").user
    assert [k.kind for k in kinds.KINDS if k.rollout] == ["Deployment", "StatefulSet"]
    assert by("Deployment").wide_columns == ("CONTAINERS", "COMMAND")
