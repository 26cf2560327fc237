"""Defaults as Kubernetes applies them; idempotent and safe on malformed input."""

import copy

from tinykube.model.defaults import apply_defaults


def test_pod_defaults():
    obj = apply_defaults({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                          "spec": {"containers": [{
                              "name": "c", "command": ["x"],
                              "livenessProbe": {"httpGet": {"port": 80}},
                              "readinessProbe": {"exec": {"command": ["true"]},
                                                 "periodSeconds": 2},
                              "ports": [{"containerPort": 80}]}],
                              "volumes": [{"name": "v"}]}})
    assert obj["metadata"]["namespace"] == "default"
    spec = obj["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["volumes"] == [{"name": "v", "emptyDir": {}}]
    c = spec["containers"][0]
    assert c["livenessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "initialDelaySeconds": 0,
        "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3}
    assert c["readinessProbe"]["periodSeconds"] == 2
    assert c["ports"][0]["protocol"] == "TCP"


def test_namespace_kept():
    obj = apply_defaults({"kind": "Pod", "metadata": {"namespace": "ns"}, "spec": {}})
    assert obj["metadata"]["namespace"] == "ns"


def test_deployment_defaults():
    obj = apply_defaults({"kind": "Deployment", "metadata": {"name": "d"},
                          "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}})
    spec = obj["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    assert (spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"],
            spec["minReadySeconds"], spec["paused"]) == (10, 600, 0, False)
    assert spec["template"]["spec"]["restartPolicy"] == "Always"


def test_recreate_gets_no_rolling_update():
    obj = apply_defaults({"kind": "Deployment", "spec": {"strategy": {"type": "Recreate"}}})
    assert obj["spec"]["strategy"] == {"type": "Recreate"}


def test_given_values_kept():
    obj = apply_defaults({"kind": "Deployment", "spec": {
        "replicas": 0, "strategy": {"rollingUpdate": {"maxSurge": 1}}}})
    assert obj["spec"]["replicas"] == 0
    assert obj["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": "25%"}


def test_statefulset_defaults():
    obj = apply_defaults({"kind": "StatefulSet", "spec": {
        "template": {"spec": {"containers": []}},
        "volumeClaimTemplates": [{"metadata": {"name": "d"}, "spec": {}}]}})
    spec = obj["spec"]
    assert spec["replicas"] == 1
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain",
                                                            "whenScaled": "Retain"}
    assert spec["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"
    on_delete = apply_defaults({"kind": "StatefulSet", "spec": {"updateStrategy": {
        "type": "OnDelete"}}})
    assert on_delete["spec"]["updateStrategy"] == {"type": "OnDelete"}


def test_rs_and_rc_defaults():
    rs = apply_defaults({"kind": "ReplicaSet", "spec": {}})
    assert rs["spec"]["replicas"] == 1
    rc = apply_defaults({"kind": "ReplicationController", "spec": {
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {}}}})
    assert rc["spec"]["selector"] == {"app": "web"}
    assert rc["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    keep = apply_defaults({"kind": "ReplicationController", "spec": {
        "selector": {"app": "x"}, "template": {"metadata": {"labels": {"app": "x", "b": "c"}}}}})
    assert keep["spec"]["selector"] == {"app": "x"}


def test_idempotent():
    obj = apply_defaults({"kind": "Deployment", "spec": {"template": {"spec": {
        "containers": [{"name": "c", "readinessProbe": {"httpGet": {"port": 1}}}]}}}})
    assert apply_defaults(copy.deepcopy(obj)) == obj


def test_malformed_input_untouched_where_wrong():
    for obj in [None, [], "x", {"kind": "Pod", "spec": []}, {"kind": "Pod", "metadata": 3},
                {"kind": "Deployment", "spec": {"strategy": "fast", "template": []}},
                {"kind": "StatefulSet", "spec": {"updateStrategy": [], "template": {"spec": 1},
                                                 "volumeClaimTemplates": [1, {"spec": 2}]}},
                {"kind": "Pod", "spec": {"containers": [1, {"livenessProbe": []}],
                                         "volumes": "x"}}]:
        apply_defaults(obj)  # must not raise
