"""Pod side of config: env (fieldRef, resourceFieldRef with divisor, configMapKeyRef,
secretKeyRef, envFrom), the files of configMap/secret/downwardAPI/projected volumes, the
atomic writer, and the validation of those fields."""

import base64
import os

import pytest

from tinykube.model.defaults import apply_defaults
from tinykube.model.validation import validate
from tinykube.runtime import atomicwriter, projection, volumes
from tinykube.runtime.containerspec import ContainerConfigError
from tinykube.runtime.envresolve import MissingConfig, container_env

POD = {"metadata": {"name": "web-0", "namespace": "prod", "uid": "u1",
                    "labels": {"app": "web", "tier": "front"},
                    "annotations": {"note": 'say "hi"'}},
       "spec": {"serviceAccountName": "robot", "containers": [
           {"name": "c", "resources": {"limits": {"cpu": "1500m", "memory": "64Mi"},
                                       "requests": {"cpu": "250m"}}}]}}
OBJECTS = {
    ("ConfigMap", "cfg"): {"kind": "ConfigMap", "data": {"mode": "fast", "1bad": "x",
                                                          "with.dot": "y"},
                           "binaryData": {"blob": base64.b64encode(b"\x01\x02").decode()}},
    ("Secret", "creds"): {"kind": "Secret", "data": {
        "password": base64.b64encode(b"s3cr3t").decode()}},
}


def lookup(kind, name):
    return OBJECTS.get((kind, name))


def env_of(container, **kwargs):
    return container_env(POD, container, "web-0", "10.88.0.5", "10.88.0.1", "c",
                         lookup=lookup, **kwargs)


def ref(path):
    return {"valueFrom": {"fieldRef": {"fieldPath": path}}}


def test_every_downward_field_of_env():
    env = env_of({"env": [{"name": n, **ref(p)} for n, p in [
        ("NAME", "metadata.name"), ("NS", "metadata.namespace"), ("UID", "metadata.uid"),
        ("APP", "metadata.labels['app']"), ("NOTE", "metadata.annotations['note']"),
        ("NODE", "spec.nodeName"), ("SA", "spec.serviceAccountName"),
        ("IP", "status.podIP"), ("IPS", "status.podIPs"), ("HOST", "status.hostIP")]]})
    assert [env[k] for k in ("NAME", "NS", "UID", "APP", "NOTE", "SA", "IP", "IPS", "HOST")] \
        == ["web-0", "prod", "u1", "web", 'say "hi"', "robot", "10.88.0.5", "10.88.0.5",
            "10.88.0.1"]
    assert env["NODE"]


def test_resource_field_refs_divide_and_round_up():
    container = POD["spec"]["containers"][0]

    def res(resource, divisor=None):
        return {"valueFrom": {"resourceFieldRef": {"resource": resource,
                                                   **({"divisor": divisor} if divisor else {})}}}
    env = container_env(POD, {**container, "env": [
        {"name": "CPU", **res("limits.cpu")}, {"name": "CPU_M", **res("limits.cpu", "1m")},
        {"name": "MEM", **res("limits.memory")}, {"name": "MEM_MI", **res("limits.memory", "1Mi")},
        {"name": "REQ", **res("requests.cpu", "1m")},
        {"name": "REQ_MEM", **res("requests.memory")}]}, "h", None, None, "c")
    assert (env["CPU"], env["CPU_M"], env["MEM"], env["MEM_MI"], env["REQ"]) == (
        "2", "1500", str(64 * 2**20), "64", "250")
    assert env["REQ_MEM"] == str(64 * 2**20)  # no request: the limit (API defaulting)
    pod = {**POD, "spec": {"containers": [container, {"name": "side", "resources": {
        "limits": {"memory": "1Gi"}}}]}}
    other = container_env(pod, {"env": [{"name": "SIDE", "valueFrom": {"resourceFieldRef": {
        "containerName": "side", "resource": "limits.memory", "divisor": "1Mi"}}}]},
        "h", None, None, "c")
    assert other["SIDE"] == "1024"  # another container's, by containerName
    with pytest.raises(ContainerConfigError, match="container nope not found"):
        container_env(pod, {"env": [{"name": "X", "valueFrom": {"resourceFieldRef": {
            "containerName": "nope", "resource": "limits.cpu"}}}]}, "h", None, None, "c")


def test_config_map_and_secret_keys_and_env_from():
    skipped = []
    env = env_of({"envFrom": [{"configMapRef": {"name": "cfg"}},
                              {"prefix": "S_", "secretRef": {"name": "creds"}}],
                  "env": [{"name": "MODE", "value": "override-$(mode)"},
                          {"name": "PW", "valueFrom": {"secretKeyRef": {
                              "name": "creds", "key": "password"}}},
                          {"name": "GONE", "valueFrom": {"configMapKeyRef": {
                              "name": "nope", "key": "k", "optional": True}}}]},
                 skipped=skipped)
    assert env["mode"] == "fast" and env["S_password"] == "s3cr3t" and env["PW"] == "s3cr3t"
    assert env["MODE"] == "override-fast" and env["with.dot"] == "y" and "GONE" not in env
    assert "1bad" not in env
    assert skipped == ["Keys [1bad] from the EnvFrom configmap prod/cfg were skipped since "
                       "they are considered invalid environment variable names."]


@pytest.mark.parametrize("var, message", [
    ({"configMapKeyRef": {"name": "nope", "key": "k"}}, 'configmap "nope" not found'),
    ({"secretKeyRef": {"name": "creds", "key": "user"}},
     "couldn't find key user in Secret prod/creds"),
])
def test_missing_sources_are_missing_config(var, message):
    with pytest.raises(MissingConfig, match=message):
        env_of({"env": [{"name": "X", "valueFrom": var}]})
    with pytest.raises(MissingConfig, match='secret "nope" not found'):
        env_of({"envFrom": [{"secretRef": {"name": "nope"}}]})
    assert issubclass(MissingConfig, ContainerConfigError)


def test_volume_payloads_items_modes_and_labels():
    pod = apply_defaults({"kind": "Pod", "metadata": POD["metadata"], "spec": {
        "containers": POD["spec"]["containers"], "volumes": [
            {"name": "all", "configMap": {"name": "cfg"}},
            {"name": "some", "secret": {"secretName": "creds", "defaultMode": 0o400,
                                        "items": [{"key": "password", "path": "a/pw"}]}},
            {"name": "meta", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "mem", "mode": 0o600, "resourceFieldRef": {
                    "containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}]}},
            {"name": "mix", "projected": {"sources": [
                {"configMap": {"name": "cfg", "items": [{"key": "mode", "path": "mode"}]}},
                {"secret": {"name": "missing", "optional": True}},
                {"downwardAPI": {"items": [{"path": "name",
                                            "fieldRef": {"fieldPath": "metadata.name"}}]}}]}},
        ]}})
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert projection.payload(vols["all"], pod, lookup) == {
        "mode": atomicwriter.File(b"fast", 0o644), "1bad": atomicwriter.File(b"x", 0o644),
        "with.dot": atomicwriter.File(b"y", 0o644), "blob": atomicwriter.File(b"\1\2", 0o644)}
    assert projection.payload(vols["some"], pod, lookup) == {
        "a/pw": atomicwriter.File(b"s3cr3t", 0o400)}
    assert projection.payload(vols["meta"], pod, lookup) == {
        "labels": atomicwriter.File(b'app="web"\ntier="front"', 0o644),
        "mem": atomicwriter.File(b"64", 0o600)}
    assert projection.payload(vols["mix"], pod, lookup) == {
        "mode": atomicwriter.File(b"fast", 0o644), "name": atomicwriter.File(b"web-0", 0o644)}
    with pytest.raises(projection.MissingSource, match="non-existent config key: nope"):
        projection.payload({"configMap": {"name": "cfg", "items": [
            {"key": "nope", "path": "x"}]}}, pod, lookup)


def test_atomic_writer_swaps_data_and_cleans_old_versions(tmp_path):
    first = {"a": atomicwriter.File(b"1", 0o644), "d/b": atomicwriter.File(b"2", 0o600)}
    assert atomicwriter.write(tmp_path, first)
    assert (tmp_path / "a").read_text() == "1" and (tmp_path / "d" / "b").read_text() == "2"
    assert os.readlink(tmp_path / "a") == "..data/a"
    assert oct((tmp_path / "d" / "b").stat().st_mode & 0o777) == oct(0o600)
    assert not atomicwriter.write(tmp_path, dict(first))  # unchanged: nothing written
    old_version = os.readlink(tmp_path / "..data")
    assert atomicwriter.write(tmp_path, {"a": atomicwriter.File(b"new", 0o644)})
    assert (tmp_path / "a").read_text() == "new" and not (tmp_path / "d").exists()
    assert not (tmp_path / old_version).exists()
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith("..")) == sorted([
        "..data", os.readlink(tmp_path / "..data")])


def test_written_volumes_are_read_only_and_sub_paths_pin_a_file(tmp_path):
    atomicwriter.write(tmp_path, {"conf": atomicwriter.File(b"v1", 0o644)})
    container = {"volumeMounts": [{"name": "cfg", "mountPath": "/etc/app"},
                                  {"name": "cfg", "mountPath": "/etc/one", "subPath": "conf"}]}
    mounts = volumes.container_mounts(container, {"cfg": tmp_path}, "c", {"cfg"})
    assert [m.readonly for m in mounts] == [True, True]
    assert mounts[1].source == tmp_path / os.readlink(tmp_path / "..data") / "conf"
    with pytest.raises(volumes.VolumeError, match="subPath"):
        volumes.container_mounts({"volumeMounts": [
            {"name": "cfg", "mountPath": "/x", "subPath": "nope"}]}, {"cfg": tmp_path}, "c",
            {"cfg"})


def pod_with(container_extra=None, volumes_=None):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "command": ["true"], **(container_extra or {})}],
        "volumes": volumes_ or []}}


@pytest.mark.parametrize("extra, expected", [
    ({"env": [{"name": "X", **ref("spec.nope")}]},
     'spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: "spec.nope"'),
    ({"env": [{"name": "X", **ref("metadata.labels")}]}, "Unsupported value"),
    ({"env": [{"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu",
                                                              "divisor": "2"}}}]},
     "only divisor's values 1m and 1 are supported with the cpu resource"),
    ({"env": [{"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]},
     'resourceFieldRef.resource: Unsupported value: "limits.gpu"'),
    ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "a b"}}}]},
     "configMapKeyRef.key: Invalid value"),
    ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"key": "k"}}}]},
     "secretKeyRef.name: Required value"),
    ({"env": [{"name": "X", "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.name"},
        "secretKeyRef": {"name": "s", "key": "k"}}}]},
     "may not have more than one field specified at a time"),
    ({"envFrom": [{"prefix": "1X", "configMapRef": {"name": "c"}}]},
     "spec.containers[0].envFrom[0].prefix: Invalid value"),
    ({"envFrom": [{}]}, "must specify one of: `configMapRef` or `secretRef`"),
])
def test_env_validation(extra, expected):
    found = [str(e) for e in validate(apply_defaults(pod_with(extra)))]
    assert any(expected in m for m in found), found


@pytest.mark.parametrize("volume, expected", [
    ({"configMap": {}}, "spec.volumes[0].configMap.name: Required value"),
    ({"secret": {"secretName": "s", "defaultMode": 0o1000}},
     "must be a number between 0 and 0777 (octal), both inclusive"),
    ({"configMap": {"name": "c", "items": [{"key": "k", "path": "/abs"}]}},
     "items[0].path: Invalid value: \"/abs\": must be a relative path"),
    ({"configMap": {"name": "c", "items": [{"key": "k", "path": "a/../b"}]}},
     "must not contain '..'"),
    ({"downwardAPI": {"items": [{"path": "x", "fieldRef": {"fieldPath": "status.podIP"}}]}},
     'Unsupported value: "status.podIP"'),
    ({"downwardAPI": {"items": [{"path": "x", "resourceFieldRef": {
        "resource": "limits.cpu"}}]}}, "resourceFieldRef.containerName: Required value"),
    ({"projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
     "serviceAccountToken: Forbidden: not supported by tinykube"),
    ({"projected": {"sources": [{"configMap": {"name": "a", "items": [
        {"key": "k", "path": "same"}]}}, {"secret": {"name": "b", "items": [
            {"key": "k", "path": "same"}]}}]}}, "conflicting duplicate paths"),
])
def test_volume_validation(volume, expected):
    found = [str(e) for e in validate(apply_defaults(pod_with(
        {"volumeMounts": [{"name": "v", "mountPath": "/v"}]}, [{"name": "v", **volume}])))]
    assert any(expected in m for m in found), found


def test_sub_path_only_into_written_volumes():
    ok = pod_with({"volumeMounts": [{"name": "v", "mountPath": "/v/f", "subPath": "f"}]},
                  [{"name": "v", "configMap": {"name": "c"}}])
    assert validate(apply_defaults(ok)) == []
    scratch = pod_with({"volumeMounts": [{"name": "v", "mountPath": "/v", "subPath": "f"}]},
                       [{"name": "v", "emptyDir": {}}])
    assert any("subPath: Forbidden" in str(e) for e in validate(apply_defaults(scratch)))
