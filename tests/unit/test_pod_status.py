"""Pod phase, conditions and container states as the kubelet computes them."""

import pytest

from tinykube.runtime.status import (
    ContainerState,
    ContainerStatus,
    PodPhase,
    RestartPolicy,
    TerminatedReason,
    WaitingReason,
    pod_conditions,
    pod_phase,
    pod_status,
    should_restart,
    termination_reason,
)

T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z", "2026-01-01T00:00:09Z"


def running(name="c"):
    c = ContainerStatus(name)
    c.mark_running(100, T0)
    return c


def exited(code, name="c"):
    c = running(name)
    c.mark_exited(code, termination_reason(code, False), T1)
    return c


@pytest.mark.parametrize("policy,code,expected", [
    ("Always", 0, True), ("Always", 1, True),
    ("OnFailure", 0, False), ("OnFailure", 2, True),
    ("Never", 0, False), ("Never", 137, False),
])
def test_should_restart(policy, code, expected):
    assert should_restart(policy, code) is expected


def test_termination_reason_needs_sigkill_and_oom_count():
    assert termination_reason(137, True) is TerminatedReason.OOM_KILLED
    assert termination_reason(137, False) is TerminatedReason.ERROR
    assert termination_reason(1, True) is TerminatedReason.ERROR
    assert termination_reason(0, True) is TerminatedReason.COMPLETED


def test_new_pod_is_pending_with_container_creating():
    c = ContainerStatus("c")
    assert c.kind is ContainerState.WAITING
    assert c.state == {"waiting": {"reason": "ContainerCreating"}}
    assert pod_phase("Always", [c]) is PodPhase.PENDING
    assert pod_phase("Always", []) is PodPhase.PENDING


def test_running_when_any_container_runs():
    assert pod_phase("Never", [running("a"), exited(1, "b")]) is PodPhase.RUNNING


@pytest.mark.parametrize("policy,codes,expected", [
    ("Never", [0, 0], PodPhase.SUCCEEDED),
    ("Never", [0, 1], PodPhase.FAILED),
    ("OnFailure", [0, 0], PodPhase.SUCCEEDED),
    ("OnFailure", [0, 1], PodPhase.RUNNING),  # the failed one is restarted
    ("Always", [0, 0], PodPhase.RUNNING),
])
def test_phase_when_all_stopped(policy, codes, expected):
    containers = [exited(code, f"c{i}") for i, code in enumerate(codes)]
    assert pod_phase(policy, containers) is expected


def test_crash_loop_moves_termination_to_last_state():
    c = exited(3)
    c.restart_count = 1
    c.mark_waiting(WaitingReason.CRASH_LOOP_BACK_OFF, "back-off 10s restarting failed")
    assert c.state["waiting"]["reason"] == "CrashLoopBackOff"
    assert c.last_state["terminated"]["exitCode"] == 3
    assert c.last_state["terminated"]["reason"] == "Error"
    # A container in back-off has run before: the pod is Running, not Pending.
    assert pod_phase("Always", [c]) is PodPhase.RUNNING
    d = c.to_dict()
    assert d["restartCount"] == 1 and d["ready"] is False and d["containerID"] == "tinykube://100"


def test_terminated_state_fields():
    c = running()
    c.mark_exited(137, TerminatedReason.OOM_KILLED, T1)
    term = c.state["terminated"]
    assert term == {"exitCode": 137, "reason": "OOMKilled", "startedAt": T0, "finishedAt": T1,
                    "signal": 9, "containerID": "tinykube://100"}


def test_sandbox_death_fails_the_pod():
    assert pod_phase(RestartPolicy.ALWAYS, [running()], sandbox_dead=True) is PodPhase.FAILED


def test_conditions_transition_time_moves_only_on_flip():
    c = running()
    first = pod_conditions(None, PodPhase.RUNNING, [c], T0)
    ready = {x["type"]: x for x in first}["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    assert "[c]" in ready["message"]
    # Same state later: the transition time stays.
    again = pod_conditions(first, PodPhase.RUNNING, [c], T1)
    assert again == first
    c.ready = True
    flipped = {x["type"]: x for x in pod_conditions(again, PodPhase.RUNNING, [c], T2)}
    assert flipped["Ready"]["status"] == "True"
    assert flipped["Ready"]["lastTransitionTime"] == T2
    assert flipped["ContainersReady"]["status"] == "True"
    assert flipped["PodScheduled"]["lastTransitionTime"] == T0


def test_finished_pod_is_not_ready():
    c = exited(0)
    c.ready = True  # stale flag must not make a finished pod Ready
    cond = {x["type"]: x for x in pod_conditions(None, PodPhase.SUCCEEDED, [c], T0)}
    assert cond["Ready"]["status"] == "False" and cond["Ready"]["reason"] == "PodCompleted"


def test_pod_status_is_stable_for_equal_input():
    c = running()
    kwargs = {"restart_policy": "Always", "containers": [c], "pod_ip": "10.202.0.5",
                  "host_ip": "10.202.0.1", "start_time": T0}
    first = pod_status(None, now=T0, **kwargs)
    assert first["phase"] == "Running" and first["podIP"] == "10.202.0.5"
    assert first["containerStatuses"][0]["state"] == {"running": {"startedAt": T0}}
    assert pod_status(first, now=T2, **kwargs) == first
