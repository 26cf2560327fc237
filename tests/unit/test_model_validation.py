"""Validation: unknown fields with full paths, wrong types, names, selectors, bounds,
probes, volumes, strategies, and the immutability rules of updates."""

import copy

import pytest

from tinykube.model.defaults import apply_defaults
from tinykube.model.schema import ignored_fields
from tinykube.model.validation import validate, validate_update


def container(**extra):
    return {"name": "app", "command": ["sleep", "1000"], **extra}


def pod(**spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [container()], **spec}}


def template(labels=None, **spec):
    return {"metadata": {"labels": labels if labels is not None else {"app": "web"}},
            "spec": {"containers": [container()], **spec}}


def deployment(**spec):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": template(), **spec}}


def replicaset(**spec):
    obj = deployment(**spec)
    obj["kind"] = "ReplicaSet"
    return obj


def rc(**spec):
    return {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc"},
            "spec": {"replicas": 1, "template": template(), **spec}}


def statefulset(**spec):
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "web"}},
                     "template": template(), **spec}}


def pvc(**spec):
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}, **spec}}


def messages(obj):
    return [str(e) for e in validate(obj)]


def only_error(obj):
    found = messages(obj)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("build", [pod, deployment, replicaset, rc, statefulset, pvc])
def test_valid_objects(build):
    obj = build()
    assert validate(obj) == []
    assert validate(apply_defaults(copy.deepcopy(obj))) == []


def test_realistic_manifest_fields_are_accepted():
    obj = deployment()
    obj["metadata"]["annotations"] = {"example.com/owner": "me"}
    obj["metadata"]["creationTimestamp"] = None
    obj["status"] = {}
    spec = obj["spec"]["template"]["spec"]
    spec["containers"][0].update(
        image="nginx:1.25", imagePullPolicy="IfNotPresent", args=["-x"], workingDir="/srv",
        ports=[{"containerPort": 80, "name": "http", "protocol": "TCP"}],
        resources={"requests": {"cpu": "100m", "memory": "64Mi"},
                   "limits": {"cpu": "1", "memory": "128Mi", "tinykube.io/pids": 64,
                              "example.com/gpu": 1}},
        terminationMessagePath="/dev/termination-log", terminationMessagePolicy="File",
        securityContext={"runAsUser": 1000, "runAsGroup": 1000, "allowPrivilegeEscalation": False},
        env=[{"name": "A", "value": "1"},
             {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        readinessProbe={"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
        livenessProbe={"tcpSocket": {"port": 80}},
        startupProbe={"exec": {"command": ["true"]}, "failureThreshold": 30},
        volumeMounts=[{"name": "cache", "mountPath": "/cache"},
                      {"name": "host", "mountPath": "/host", "readOnly": True},
                      {"name": "data", "mountPath": "/data"}])
    spec.update(
        volumes=[{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                 {"name": "host", "hostPath": {"path": "/tmp", "type": "Directory"}},
                 {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        nodeSelector={"disk": "ssd"}, tolerations=[], serviceAccountName="default",
        dnsPolicy="ClusterFirst", schedulerName="default-scheduler",
        terminationGracePeriodSeconds=5, securityContext={"runAsUser": 1000})
    assert messages(obj) == []


@pytest.mark.parametrize("mutate, expected", [
    (lambda o: o["spec"]["template"]["spec"]["containers"][0].update(comand=["x"]),
     "spec.template.spec.containers[0].comand: unknown field"),
    (lambda o: o.update(specs={}), "specs: unknown field"),
    (lambda o: o["metadata"].update(lables={}), "metadata.lables: unknown field"),
    (lambda o: o["spec"]["selector"].update(matchLabel={}), "spec.selector.matchLabel: unknown field"),
    (lambda o: o["spec"].update(strategy={"rollingUpdate": {"maxSurges": 1}}),
     "spec.strategy.rollingUpdate.maxSurges: unknown field"),
    (lambda o: o["spec"]["template"]["spec"]["containers"][0].update(
        livenessProbe={"exec": {"command": ["x"], "cmd": 1}}),
     "spec.template.spec.containers[0].livenessProbe.exec.cmd: unknown field"),
    (lambda o: o["spec"].update(replicas="3"),
     'spec.replicas: Invalid value: "3": must be an integer'),
    (lambda o: o["spec"].update(replicas=True),
     "spec.replicas: Invalid value: true: must be an integer"),
    (lambda o: o["spec"].update(replicas=1.5),
     "spec.replicas: Invalid value: 1.5: must be an integer"),
    (lambda o: o["spec"].update(paused="yes"),
     'spec.paused: Invalid value: "yes": must be a boolean'),
    (lambda o: o["spec"]["template"]["spec"].update(containers={"name": "x"}),
     'spec.template.spec.containers: Invalid value: {"name":"x"}: must be a list'),
    (lambda o: o["spec"]["template"]["spec"]["containers"][0].update(command="sleep 1"),
     'spec.template.spec.containers[0].command: Invalid value: "sleep 1": must be a list'),
    (lambda o: o["spec"]["template"]["metadata"]["labels"].update(version=2),
     "spec.template.metadata.labels[version]: Invalid value: 2: must be a string"),
    (lambda o: o.update(spec=[]), "spec: Invalid value: []: must be an object"),
])
def test_structural_errors(mutate, expected):
    obj = deployment()
    obj["spec"]["replicas"] = -5  # value errors are not reported next to structural ones
    mutate(obj)
    assert only_error(obj) == expected


@pytest.mark.parametrize("replicas, ok", [(0, True), (1, True), (100_000, True),
                                          (100_001, False), (-1, False), (10**18, False)])
def test_replicas_bounds(replicas, ok):
    assert (validate(deployment(replicas=replicas)) == []) is ok


def test_replicas_messages():
    assert only_error(rc(replicas=-1)) == (
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0")
    assert only_error(replicaset(replicas=10**9)) == (
        "spec.replicas: Invalid value: 1000000000: must be less than or equal to 100000")


@pytest.mark.parametrize("name, ok", [
    ("web", True), ("web-1.example", True), ("a" * 253, True), ("a" * 254, False),
    ("../x", False), ("..", False), ("a/b", False), ("a\0b", False), ("Web", False),
    ("-web", False), ("web-", False), ("we b", False), ("", False), ("ü", False),
])
def test_object_names(name, ok):
    obj = pod()
    obj["metadata"]["name"] = name
    assert (validate(obj) == []) is ok


def test_name_messages():
    obj = pod()
    obj["metadata"]["name"] = "../x"
    assert only_error(obj).startswith(
        'metadata.name: Invalid value: "../x": a lowercase RFC 1123 subdomain')
    del obj["metadata"]["name"]
    assert only_error(obj) == "metadata.name: Required value: name or generateName is required"
    obj["metadata"]["generateName"] = "web-"
    assert messages(obj) == []


def test_statefulset_name_is_a_dns_label():
    obj = statefulset()
    obj["metadata"]["name"] = "db.x"
    assert only_error(obj).startswith('metadata.name: Invalid value: "db.x": a lowercase RFC '
                                      "1123 label")


def test_hostname_namespace_and_labels():
    assert only_error(pod(hostname="a.b")).startswith(
        'spec.hostname: Invalid value: "a.b": a lowercase RFC 1123 label')
    assert only_error(pod(hostname="a" * 64)).startswith(
        'spec.hostname: Invalid value: "' + "a" * 64 + '": must be no more than 63 characters')
    obj = pod()
    obj["metadata"]["namespace"] = "../etc"
    assert only_error(obj).startswith('metadata.namespace: Invalid value: "../etc"')
    obj = pod()
    obj["metadata"]["labels"] = {"-bad": "x"}
    assert only_error(obj).startswith('metadata.labels: Invalid value: "-bad": name part')
    obj["metadata"] = {"name": "p", "annotations": {"a": "x" * 300_000}}
    assert only_error(obj) == "metadata.annotations: Too long: may not be more than 262144 bytes"


def test_selector_must_match_template():
    obj = deployment()
    obj["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    assert only_error(obj) == ('spec.template.metadata.labels: Invalid value: {"app":"other"}: '
                               "`selector` does not match template `labels`")
    obj = replicaset(selector={"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["web", "api"]}]})
    assert messages(obj) == []


def test_selector_required_and_not_empty():
    obj = deployment()
    del obj["spec"]["selector"]
    assert only_error(obj) == "spec.selector: Required value"
    assert only_error(statefulset(selector={})) == (
        "spec.selector: Invalid value: {}: empty selector is invalid for statefulset")
    assert only_error(replicaset(selector={"matchExpressions": [
        {"key": "app", "operator": "Exists", "values": ["x"]}]})).startswith(
        "spec.selector.matchExpressions[0].values: Forbidden")


def test_rc_selector_defaults_to_template_labels():
    assert messages(rc()) == []
    assert only_error(rc(selector={"app": "db"})) == (
        'spec.template.metadata.labels: Invalid value: {"app":"web"}: `selector` does not match '
        "template `labels`")
    assert only_error(rc(template=template(labels={}))) == "spec.selector: Required value"


@pytest.mark.parametrize("policy, ok", [("Always", True), ("OnFailure", False),
                                        ("Never", False), (None, True)])
def test_controller_templates_restart_always(policy, ok):
    spec = {"restartPolicy": policy} if policy else {}
    assert (validate(replicaset(template=template(**spec))) == []) is ok
    assert validate(pod(**spec)) == []


def test_restart_policy_enum():
    assert only_error(pod(restartPolicy="Sometimes")) == (
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", '
        '"OnFailure", "Never"')


def test_containers():
    assert only_error(pod(containers=[])) == (
        "spec.containers: Required value: must have at least 1 item")
    assert only_error(pod(containers=[container(), container()])) == (
        'spec.containers[1].name: Duplicate value: "app"')
    assert only_error(pod(containers=[container(name="App")])).startswith(
        'spec.containers[0].name: Invalid value: "App": a lowercase RFC 1123 label')
    assert only_error(pod(containers=[{"name": "x"}])).startswith(
        "spec.containers[0].command: Required value")
    assert only_error(pod(containers=[container(workingDir="srv")])) == (
        'spec.containers[0].workingDir: Invalid value: "srv": must be an absolute path')


def test_volumes_and_mounts():
    mounts = [{"name": "v", "mountPath": "/data"}]
    assert messages(pod(containers=[container(volumeMounts=mounts)],
                        volumes=[{"name": "v", "emptyDir": {}}])) == []
    assert only_error(pod(containers=[container(volumeMounts=mounts)])) == (
        'spec.containers[0].volumeMounts[0].name: Not found: "v"')
    bad = [{"name": "v", "mountPath": "/a/../etc"}]
    assert only_error(pod(containers=[container(volumeMounts=bad)],
                          volumes=[{"name": "v", "emptyDir": {}}])) == (
        "spec.containers[0].volumeMounts[0].mountPath: Invalid value: \"/a/../etc\": must not "
        "contain '..'")
    twice = mounts + [{"name": "v", "mountPath": "/data"}]
    assert only_error(pod(containers=[container(volumeMounts=twice)],
                          volumes=[{"name": "v", "emptyDir": {}}])) == (
        'spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/data": must be unique')
    assert only_error(pod(volumes=[{"name": "v", "emptyDir": {}},
                                   {"name": "v", "emptyDir": {}}])) == (
        'spec.volumes[1].name: Duplicate value: "v"')
    assert only_error(pod(volumes=[{"name": "v", "emptyDir": {},
                                    "hostPath": {"path": "/tmp"}}])) == (
        "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type")
    assert only_error(pod(volumes=[{"name": "v", "hostPath": {"path": "tmp"}}])) == (
        'spec.volumes[0].hostPath.path: Invalid value: "tmp": must be an absolute path')
    assert only_error(pod(volumes=[{"name": "v", "hostPath": {"path": "/t", "type": "Dir"}}])
                      ).startswith('spec.volumes[0].hostPath.type: Unsupported value: "Dir"')
    assert only_error(pod(volumes=[{"name": "v", "nfs": {"server": "x"}}])).startswith(
        "spec.volumes[0].nfs: Forbidden: not supported by tinykube")
    assert only_error(pod(volumes=[{"name": "v", "persistentVolumeClaim": {
        "claimName": "../x"}}])).startswith(
        'spec.volumes[0].persistentVolumeClaim.claimName: Invalid value: "../x"')
    assert only_error(pod(volumes=[{"name": "v", "emptyDir": {"sizeLimit": "lots"}}])
                      ).startswith('spec.volumes[0].emptyDir.sizeLimit: Invalid value: "lots"')


@pytest.mark.parametrize("probe, expected", [
    ({"exec": {"command": ["true"]}}, None),
    ({"tcpSocket": {"port": 8080}}, None),
    ({"httpGet": {"port": "http", "path": "/ready"}}, None),
    ({}, "spec.containers[0].livenessProbe: Required value: must specify a handler type"),
    ({"exec": {"command": ["x"]}, "tcpSocket": {"port": 1}},
     ("spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 "
     "handler type")),
    ({"tcpSocket": {"port": 0}},
     ("spec.containers[0].livenessProbe.tcpSocket.port: Invalid value: 0: must be greater than "
     "or equal to 1")),
    ({"tcpSocket": {"port": 65536}},
     ("spec.containers[0].livenessProbe.tcpSocket.port: Invalid value: 65536: must be less than "
     "or equal to 65535")),
    ({"httpGet": {"port": "metrics"}},
     ('spec.containers[0].livenessProbe.httpGet.port: Invalid value: "metrics": must be a port '
     "number or the name of one of the container's ports")),
    ({"httpGet": {"port": 80, "path": "ready"}},
     ('spec.containers[0].livenessProbe.httpGet.path: Invalid value: "ready": must start with '
     "'/'")),
    ({"httpGet": {"port": 80, "scheme": "FTP"}},
     ('spec.containers[0].livenessProbe.httpGet.scheme: Unsupported value: "FTP": supported '
     'values: "HTTP", "HTTPS"')),
    ({"exec": {"command": []}},
     "spec.containers[0].livenessProbe.exec.command: Required value: must have at least 1 item"),
    ({"exec": {"command": ["x"]}, "periodSeconds": 0},
     ("spec.containers[0].livenessProbe.periodSeconds: Invalid value: 0: must be greater than "
     "or equal to 1")),
    ({"exec": {"command": ["x"]}, "successThreshold": 2},
     "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"),
    ({"httpGet": {"port": 80, "scheme": "HTTPS"}},
     ("spec.containers[0].livenessProbe.httpGet.scheme: Forbidden: HTTPS is not supported by "
      "tinykube (use HTTP)")),
    ({"grpc": {"port": 1}},
     ("spec.containers[0].livenessProbe.grpc: Forbidden: not supported by tinykube (use exec, "
     "tcpSocket or httpGet)")),
])
def test_probes(probe, expected):
    ports = [{"containerPort": 8080, "name": "http"}]
    found = messages(pod(containers=[container(livenessProbe=probe, ports=ports)]))
    if expected is None:
        assert found == []
    else:
        assert expected in found, found


def test_resources():
    def res(**resources):
        return pod(containers=[container(resources=resources)])
    assert messages(res(limits={"cpu": "500m", "memory": "64Mi", "tinykube.io/pids": "100"})) == []
    assert only_error(res(limits={"cpu": "lots"})).startswith(
        'spec.containers[0].resources.limits[cpu]: Invalid value: "lots": quantities must match')
    assert only_error(res(limits={"memory": "1Gi"}, requests={"memory": "2Gi"})) == (
        'spec.containers[0].resources.requests[memory]: Invalid value: "2Gi": must be less than '
        "or equal to memory limit of 1Gi")
    assert only_error(res(limits={"tinykube.io/pids": "1.5"})) == (
        'spec.containers[0].resources.limits[tinykube.io/pids]: Invalid value: "1.5": must be '
        "a whole number")
    assert only_error(res(limits={"gpu": 1})).startswith(
        'spec.containers[0].resources.limits[gpu]: Unsupported value: "gpu"')


def test_security_context_and_env():
    assert only_error(pod(containers=[container(securityContext={"runAsUser": -1})])) == (
        "spec.containers[0].securityContext.runAsUser: Invalid value: -1: must be greater than "
        "or equal to 0")
    assert only_error(pod(securityContext={"runAsGroup": "root"})) == (
        'spec.securityContext.runAsGroup: Invalid value: "root": must be an integer')
    env = [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"}}}]
    assert only_error(pod(containers=[container(env=env)])) == (
        'spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: '
        '"spec.hostname": supported values: "metadata.name", "metadata.namespace", '
        '"metadata.uid", "spec.nodeName", "spec.serviceAccountName", "status.hostIP", '
        '"status.hostIPs", "status.podIP", "status.podIPs"')
    env = [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    assert "may not be specified when `value` is not empty" in only_error(
        pod(containers=[container(env=env)]))
    assert only_error(pod(containers=[container(env=[{"name": "1A=", "value": "x"}])])
                      ).startswith('spec.containers[0].env[0].name: Invalid value: "1A="')
    assert only_error(pod(containers=[container(env=[{"value": "x"}])])) == (
        "spec.containers[0].env[0].name: Required value")


@pytest.mark.parametrize("strategy, expected", [
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, None),
    ({"rollingUpdate": {"maxSurge": "50%", "maxUnavailable": "10%"}}, None),
    ({"type": "Recreate"}, None),
    ({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}},
     ("spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when "
     "`maxSurge` is 0")),
    ({"rollingUpdate": {"maxSurge": "0%", "maxUnavailable": "0%"}},
     ('spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "0%": may not be 0 when '
     "`maxSurge` is 0")),
    ({"rollingUpdate": {"maxUnavailable": "150%"}},
     ('spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "150%": must not be greater '
     "than 100%")),
    ({"rollingUpdate": {"maxSurge": "1.5"}},
     'spec.strategy.rollingUpdate.maxSurge: Invalid value: "1.5": a valid percent string'),
    ({"rollingUpdate": {"maxSurge": -1}},
     ("spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal "
     "to 0")),
    ({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}},
     ("spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is "
     "'Recreate'")),
    ({"type": "BlueGreen"},
     ('spec.strategy.type: Unsupported value: "BlueGreen": supported values: "RollingUpdate", '
     '"Recreate"')),
])
def test_deployment_strategy(strategy, expected):
    found = messages(deployment(strategy=strategy))
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].startswith(expected), found


def test_deployment_numbers():
    assert only_error(deployment(progressDeadlineSeconds=10, minReadySeconds=10)) == (
        "spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds")
    assert only_error(deployment(minReadySeconds=600)) == (  # against the default deadline
        "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than "
        "minReadySeconds")
    assert messages(deployment(minReadySeconds=5, revisionHistoryLimit=0, paused=True)) == []
    assert only_error(deployment(revisionHistoryLimit=-1)).startswith(
        "spec.revisionHistoryLimit: Invalid value: -1")


def test_statefulset_fields():
    claim = {"metadata": {"name": "data"},
             "spec": {"accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": "1Gi"}}}}
    mounts = [{"name": "data", "mountPath": "/data"}]
    ok = statefulset(volumeClaimTemplates=[claim], podManagementPolicy="Parallel",
                     updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
                     persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete",
                                                           "whenScaled": "Retain"},
                     template=template(containers=[container(volumeMounts=mounts)]))
    assert messages(ok) == []
    assert only_error(statefulset(podManagementPolicy="Random")).startswith(
        'spec.podManagementPolicy: Unsupported value: "Random"')
    assert only_error(statefulset(updateStrategy={"type": "OnDelete",
                                                  "rollingUpdate": {"partition": 1}})
                      ).startswith("spec.updateStrategy.rollingUpdate: Invalid value")
    assert only_error(statefulset(updateStrategy={"rollingUpdate": {"partition": -1}})
                      ).startswith("spec.updateStrategy.rollingUpdate.partition: Invalid value: -1")
    assert only_error(statefulset(persistentVolumeClaimRetentionPolicy={"whenScaled": "Keep"})
                      ).startswith('spec.persistentVolumeClaimRetentionPolicy.whenScaled: '
                                   'Unsupported value: "Keep"')
    assert only_error(statefulset(serviceName="Db")).startswith(
        'spec.serviceName: Invalid value: "Db"')
    no_storage = copy.deepcopy(claim)
    no_storage["spec"]["resources"]["requests"] = {}
    assert only_error(statefulset(volumeClaimTemplates=[no_storage])) == (
        "spec.volumeClaimTemplates[0].spec.resources.requests[storage]: Required value")
    assert only_error(statefulset(volumeClaimTemplates=[claim, claim])) == (
        'spec.volumeClaimTemplates[1].metadata.name: Duplicate value: "data"')
    nameless = copy.deepcopy(claim)
    del nameless["metadata"]["name"]
    assert only_error(statefulset(volumeClaimTemplates=[nameless])) == (
        "spec.volumeClaimTemplates[0].metadata.name: Required value")


def test_pvc():
    assert only_error(pvc(accessModes=["ReadWriteSometimes"])).startswith(
        'spec.accessModes[0]: Unsupported value: "ReadWriteSometimes"')
    assert only_error(pvc(resources={"requests": {"storage": "0"}})) == (
        'spec.resources.requests[storage]: Invalid value: "0": must be greater than zero')


@pytest.mark.parametrize("obj, expected", [
    ({"kind": "Pod"}, "apiVersion: Required value"),
    ({"apiVersion": "v1"}, "kind: Required value"),
    ({"apiVersion": "v1", "kind": "Foo"},
     'kind: Invalid value: "Foo": no kind "Foo" is registered for version "v1"'),
    ({"apiVersion": "v1", "kind": "Deployment"},
     ('apiVersion: Invalid value: "v1": no kind "Deployment" is registered for version "v1" '
     '(use apiVersion "apps/v1")')),
    ({"apiVersion": "v1", "kind": "Event"},
     "kind: Forbidden: Event objects are written by tinykube itself"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}, "spec: Required value"),
    ("Pod", 'Invalid value: "Pod": an object must be a mapping'),
])
def test_type_meta(obj, expected):
    assert only_error(obj) == expected


def test_limits_on_depth_and_size():
    deep: dict = {}
    node = deep
    for _ in range(10_000):
        node["x"] = {}
        node = node["x"]
    obj = pod()
    obj["status"] = deep
    assert "nested more than" in only_error(obj)
    obj["status"] = {"big": ["x" * 1000] * 5000}
    assert "larger than" in only_error(obj)
    obj["status"] = {"many": [0] * 200_000}
    assert "more than 100000 values" in only_error(obj)
    shared: list = [0] * 10
    for _ in range(30):  # a "billion laughs" made of shared lists
        shared = [shared] * 10
    obj["status"] = shared
    assert only_error(obj)


def test_ignored_fields_are_listed():
    ignored = ignored_fields()
    assert "affinity" in ignored["Pod.spec"]
    assert "nodeSelector" not in ignored["Pod.spec"]  # the scheduler honours it
    assert "terminationMessagePath" in ignored["Pod.spec.containers[]"]


# --- updates -------------------------------------------------------------------------------

def stored(obj):
    obj = apply_defaults(copy.deepcopy(obj))
    obj["metadata"].update(uid="u1", resourceVersion="5")
    return obj


def test_update_selector_immutable():
    old = stored(deployment())
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "v": "2"}}
    new["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    assert [str(e) for e in validate_update(old, new)] == [
        'spec.selector: Invalid value: {"matchLabels":{"app":"web","v":"2"}}: field is immutable']


def test_update_allowed_changes():
    old = stored(deployment())
    new = deployment(replicas=5)  # defaults omitted by the user are not a change
    new["spec"]["template"]["spec"]["containers"][0]["command"] = ["sleep", "5"]
    assert validate_update(old, new) == []
    old_rc = stored(rc())
    new_rc = rc(selector={"app": "web"}, replicas=3)
    assert validate_update(old_rc, new_rc) == []


def test_update_name_and_kind_immutable():
    old = stored(pod())
    new = copy.deepcopy(old)
    new["metadata"]["name"] = "q"
    assert [str(e) for e in validate_update(old, new)] == [
        'metadata.name: Invalid value: "q": field is immutable']


def test_update_statefulset_spec():
    old = stored(statefulset())
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 4
    new["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    assert validate_update(old, new) == []
    new["spec"]["podManagementPolicy"] = "Parallel"
    assert "updates to statefulset spec for fields other than" in str(
        validate_update(old, new)[0])


def test_update_pod_spec():
    old = stored(pod())
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "busybox"
    new["spec"]["terminationGracePeriodSeconds"] = 1
    new["metadata"]["labels"] = {"a": "b"}
    assert validate_update(old, new) == []
    new["spec"]["containers"][0]["command"] = ["true"]
    assert str(validate_update(old, new)[0]).startswith(
        "spec: Forbidden: pod updates may not change fields other than")


def test_update_does_not_repeat_validation():
    old = stored(deployment())
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = -1
    assert validate_update(old, new) == []
    assert [e.path for e in validate(new)] == ["spec.replicas"]
    assert validate_update(old, "junk") == [] and validate_update(None, new) == []
