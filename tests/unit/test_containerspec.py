"""Container spec -> launch: $(VAR) expansion, env sources, argv, limits, user, grace."""

import pytest

from tinykube.runtime.containerspec import (
    ContainerConfigError,
    container_argv,
    container_env,
    container_limits,
    expand,
    grace_seconds,
    run_as,
)

POD = {"metadata": {"name": "web-0", "namespace": "prod", "uid": "u1",
                    "labels": {"app": "web"}},
       "spec": {"securityContext": {"runAsUser": 1000, "runAsGroup": 100}}}


@pytest.mark.parametrize("text, expected", [
    ("$(A)-$(B)", "1-$(B)"), ("$$(A)", "$(A)"), ("plain", "plain"), ("$(A)$(A)", "11")])
def test_expand_follows_kubernetes(text, expected):
    assert expand(text, {"A": "1"}) == expected


def test_env_sources_and_order():
    container = {"env": [
        {"name": "X", "value": "x"},
        {"name": "Y", "value": "$(X)y"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
    ], "resources": {"limits": {"memory": "64Mi"}}}
    env = container_env(POD, container, "web-0", "10.88.0.5", "10.88.0.1", "c")
    assert env["Y"] == "xy" and env["POD"] == "web-0" and env["IP"] == "10.88.0.5"
    assert env["APP"] == "web" and env["HOSTNAME"] == "web-0" and "PATH" in env
    with pytest.raises(ContainerConfigError, match="unsupported field"):
        container_env(POD, {"env": [{"name": "N", "valueFrom": {
            "fieldRef": {"fieldPath": "spec.nope"}}}]}, "h", None, None, "c")


def test_argv_expands_and_requires_a_command():
    assert container_argv({"command": ["echo"], "args": ["$(X)"]}, {"X": "hi"}, "c") == [
        "echo", "hi"]
    with pytest.raises(ContainerConfigError, match="command: required"):
        container_argv({}, {}, "spec.containers[0]")


def test_limits_and_user():
    limits = container_limits({"resources": {"limits": {
        "cpu": "500m", "memory": "64Mi", "tinykube.io/pids": "50"}}}, "c")
    assert (limits.cpu_millis, limits.memory_bytes, limits.pids) == (500, 64 * 2**20, 50)
    with pytest.raises(ContainerConfigError, match="resources.limits"):
        container_limits({"resources": {"limits": {"memory": "lots"}}}, "c")
    assert run_as(POD, {}) == (1000, 100)
    assert run_as(POD, {"securityContext": {"runAsUser": 0}}) == (0, 100)


def test_cpu_request_only_when_given():
    def request(resources):
        return container_limits({"resources": resources}, "c").cpu_request_millis
    assert request({"requests": {"cpu": "250m"}, "limits": {"cpu": "1"}}) == 250
    assert request({"limits": {"cpu": "1"}}) is None  # the kernel's default share
    assert request({}) is None
    with pytest.raises(ContainerConfigError, match=r"c\.resources\.requests\.cpu"):
        request({"requests": {"cpu": "fast"}})


def test_grace_prefers_the_deletion_request():
    assert grace_seconds({"metadata": {}, "spec": {}}) == 30
    assert grace_seconds({"metadata": {}, "spec": {"terminationGracePeriodSeconds": 5}}) == 5
    assert grace_seconds({"metadata": {"deletionGracePeriodSeconds": 1},
                          "spec": {"terminationGracePeriodSeconds": 5}}) == 1
