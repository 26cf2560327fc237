"""Init containers, native sidecars and lifecycle hooks: validation with Kubernetes' field
paths and messages, the pod phase and conditions the kubelet reports while initializing,
and kubectl's STATUS/READY/RESTARTS columns for them."""

import pytest

from tinykube.cli.printing import COLUMNS
from tinykube.cli.printing import pod_status as status_column
from tinykube.model.validation import validate
from tinykube.runtime.status import (
    ContainerStatus,
    PodPhase,
    WaitingReason,
    pod_phase,
    pod_status,
    termination_reason,
    waiting_state,
)

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z"


def container(name="app", **extra):
    return {"name": name, "command": ["sleep", "1000"], **extra}


def pod(inits, containers=None, **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": containers or [container()], "initContainers": inits,
                     **spec}}


def messages(obj):
    return [str(e) for e in validate(obj)]


# -- validation ------------------------------------------------------------------------------

def test_init_containers_and_sidecars_with_hooks_are_valid():
    hooks = {"postStart": {"exec": {"command": ["true"]}},
             "preStop": {"sleep": {"seconds": 5}}}
    assert messages(pod([container("setup"),
                         container("proxy", restartPolicy="Always", lifecycle=hooks,
                                   startupProbe={"exec": {"command": ["true"]}})],
                        [container(lifecycle={
                            "postStart": {"httpGet": {"port": 8080, "path": "/up"}},
                            "preStop": {"tcpSocket": {"port": 8080}}})])) == []


@pytest.mark.parametrize("field, value", [
    ("lifecycle", {"preStop": {"exec": {"command": ["true"]}}}),
    ("livenessProbe", {"exec": {"command": ["true"]}}),
    ("readinessProbe", {"exec": {"command": ["true"]}}),
    ("startupProbe", {"exec": {"command": ["true"]}}),
])
def test_only_sidecars_may_have_probes_or_hooks(field, value):
    assert messages(pod([container("setup", **{field: value})])) == [
        f"spec.initContainers[0].{field}: Forbidden: may not be set for init containers "
        "without restartPolicy=Always"]


def test_init_container_restart_policy_and_names():
    assert messages(pod([container("setup", restartPolicy="Never")])) == [
        'spec.initContainers[0].restartPolicy: Unsupported value: "Never": supported values: '
        '"Always"']
    assert messages(pod([container("app")])) == [
        'spec.initContainers[0].name: Duplicate value: "app"']
    assert messages(pod([], [container(restartPolicy="Always")])) == [
        "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"]
    assert messages(pod([{"name": "setup"}]))[0].startswith(
        "spec.initContainers[0].command: Required value")


def test_lifecycle_handler_errors_name_the_field():
    def hook(handler, **spec):
        return messages(pod([], [container(lifecycle={"preStop": handler})], **spec))
    assert hook({}) == ["spec.containers[0].lifecycle.preStop: Required value: must specify "
                        "a handler type"]
    assert hook({"exec": {"command": ["true"]}, "sleep": {"seconds": 1}}) == [
        "spec.containers[0].lifecycle.preStop.sleep: Forbidden: may not specify more than 1 "
        "handler type"]
    assert hook({"sleep": {"seconds": 40}}) == [
        "spec.containers[0].lifecycle.preStop.sleep: Invalid value: 40: must be non-negative "
        "and less than terminationGracePeriodSeconds (30)"]
    assert hook({"sleep": {"seconds": 5}}, terminationGracePeriodSeconds=2)[0].endswith(
        "(2)")
    assert hook({"httpGet": {"port": "web"}}) == [
        'spec.containers[0].lifecycle.preStop.httpGet.port: Invalid value: "web": must be a '
        "port number or the name of one of the container's ports"]
    assert hook({"exec": {}}) == [
        "spec.containers[0].lifecycle.preStop.exec.command: Required value"]
    assert messages(pod([], [container(lifecycle={"stopSignal": "SIGINT"})]))[0].startswith(
        "spec.containers[0].lifecycle.stopSignal: Forbidden: not supported by tinykube")


# -- phase and conditions ------------------------------------------------------------------

def init_status(name, state=None, *, sidecar=False, started=False, ready=False, last=None):
    c = ContainerStatus(name, restartable=sidecar,
                        state=state or waiting_state(WaitingReason.POD_INITIALIZING))
    c.started, c.ready = started, ready
    c.last_state = last or {}
    return c


def done(name, code=0):
    c = ContainerStatus(name)
    c.mark_running(1, T0)
    c.mark_exited(code, termination_reason(code, False), T1)
    return c


def running(name, **kw):
    c = ContainerStatus(name, **kw)
    c.mark_running(1, T0)
    return c


def app_waiting():
    return [ContainerStatus("app", state=waiting_state(WaitingReason.POD_INITIALIZING))]


def test_pending_while_init_runs_failed_only_under_never():
    first, second = done("first"), running("second")
    assert pod_phase("Always", app_waiting(), init_containers=[first, second]) \
        is PodPhase.PENDING
    failed = done("first", 3)
    assert pod_phase("Never", app_waiting(), init_containers=[failed]) is PodPhase.FAILED
    assert pod_phase("OnFailure", app_waiting(), init_containers=[failed]) is PodPhase.PENDING
    retrying = done("first", 3)
    retrying.mark_waiting(WaitingReason.CRASH_LOOP_BACK_OFF)
    assert pod_phase("Always", app_waiting(), init_containers=[retrying]) is PodPhase.PENDING


def test_a_sidecar_does_not_hold_a_finished_pod():
    sidecar = running("proxy", restartable=True)
    sidecar.started = True
    assert pod_phase("Never", [done("app")], init_containers=[sidecar]) is PodPhase.RUNNING
    stopped = done("proxy", 143)
    stopped.restartable = True
    assert pod_phase("Never", [done("app")], init_containers=[stopped]) is PodPhase.SUCCEEDED
    assert pod_phase("Never", [done("app", 1)], init_containers=[stopped]) is PodPhase.FAILED
    unstarted = running("proxy", restartable=True)
    assert pod_phase("Always", app_waiting(), init_containers=[unstarted]) is PodPhase.PENDING


def test_initialized_condition_and_sidecar_readiness():
    status = pod_status(None, restart_policy="Always", containers=app_waiting(),
                        init_containers=[done("first"), running("second")], pod_ip=None,
                        host_ip=None, start_time=None, now=T0)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Initialized"]["status"] == "False"
    assert conditions["Initialized"]["reason"] == "ContainersNotInitialized"
    assert conditions["Initialized"]["message"] == \
        "containers with incomplete status: [second]"
    assert [c["name"] for c in status["initContainerStatuses"]] == ["first", "second"]

    sidecar = running("proxy", restartable=True)
    sidecar.started = True
    app = running("app")
    app.ready = app.started = True
    status = pod_status(None, restart_policy="Always", containers=[app],
                        init_containers=[sidecar], pod_ip=None, host_ip=None,
                        start_time=None, now=T0)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Initialized"]["status"] == "True"
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["message"] == "containers with unready status: [proxy]"
    no_init = pod_status(None, restart_policy="Always", containers=[app], pod_ip=None,
                         host_ip=None, start_time=None, now=T0)
    assert "initContainerStatuses" not in no_init


# -- kubectl's columns ------------------------------------------------------------------------

def listed(init_statuses, app_statuses, *, sidecar=False, phase="Pending", initialized=False):
    inits = [{"name": s["name"], **({"restartPolicy": "Always"} if sidecar else {})}
             for s in init_statuses]
    return {"metadata": {"name": "p"},
            "spec": {"initContainers": inits, "containers": [{"name": "app"}]},
            "status": {"phase": phase, "initContainerStatuses": init_statuses,
                       "containerStatuses": app_statuses,
                       "conditions": [{"type": "Initialized",
                                       "status": "True" if initialized else "False"}]}}


WAITING_INIT = {"waiting": {"reason": "PodInitializing"}}
COMPLETED = {"terminated": {"exitCode": 0, "reason": "Completed"}}


@pytest.mark.parametrize("inits, expected", [
    ([{"name": "a", "state": {"running": {}}}, {"name": "b", "state": WAITING_INIT}],
     "Init:0/2"),
    ([{"name": "a", "state": COMPLETED}, {"name": "b", "state": {"running": {}}}],
     "Init:1/2"),
    ([{"name": "a", "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}],
     "Init:Error"),
    ([{"name": "a", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
       "restartCount": 2}], "Init:CrashLoopBackOff"),
    ([{"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}}],
     "Init:Signal:9"),
])
def test_status_column_while_initializing(inits, expected):
    obj = listed(inits, [{"name": "app", "state": WAITING_INIT}])
    assert status_column(obj) == expected


def test_status_column_after_init_and_the_ready_count_with_a_sidecar():
    obj = listed([{"name": "a", "state": COMPLETED}],
                 [{"name": "app", "state": WAITING_INIT}], initialized=True)
    assert status_column(obj) == "PodInitializing"
    sidecar = {"name": "proxy", "state": {"running": {}}, "started": True, "ready": True,
               "restartCount": 1}
    app = {"name": "app", "state": {"running": {}}, "ready": True, "restartCount": 2}
    obj = listed([sidecar], [app], sidecar=True, phase="Running", initialized=True)
    _, row = COLUMNS["Pod"]
    assert row(obj) == ["2/2", "Running", "3"]
