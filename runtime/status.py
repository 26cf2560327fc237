"""The Pod status as the kubelet computes it, from what the pod worker knows of its containers.

Pure functions over plain data, so phases, conditions and container states can be tested
without processes. The pod worker keeps one `ContainerStatus` per container, mutates it at
each transition (created, started, exited, back-off) and asks `pod_status` for the status to
write; it writes only when the result differs from what it last wrote.

Phase follows the kubelet's `getPhase` (pkg/kubelet/kubelet_pods.go): any container still
waiting for its first start -> Pending; something running -> Running; all stopped ->
Running under restartPolicy Always (they come back), Succeeded if all exited 0, Failed under
Never, and Running under OnFailure (the failed ones come back). A pod whose sandbox died is
Failed, so a ReplicaSet replaces it.

Init containers (`spec.initContainers`) count as the kubelet counts them (getPhase and
GeneratePodInitializedCondition in pkg/kubelet/status): a regular one that has not exited 0
keeps the pod Pending (Failed under `Never` once it failed); a native sidecar
(`restartPolicy: Always`) counts like an app container while it runs, and is ignored once
terminated, so a pod whose app containers finished is Succeeded/Failed while its sidecars are
being stopped. Sidecars count for ContainersReady; completed regular init containers do not.

Conditions carry `lastTransitionTime` that moves only when the condition's status flips:
otherwise every write would change the status and defeat "write only when changed".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class PodPhase(str, enum.Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


class RestartPolicy(str, enum.Enum):
    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"

    @classmethod
    def of(cls, spec: dict[str, Any]) -> RestartPolicy:
        """The pod's policy; Kubernetes defaults an absent one to Always."""
        return cls(spec.get("restartPolicy") or "Always")


class ContainerState(str, enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    TERMINATED = "terminated"


class WaitingReason(str, enum.Enum):
    CONTAINER_CREATING = "ContainerCreating"
    POD_INITIALIZING = "PodInitializing"  # not started yet, in a pod with init containers
    POST_START_HOOK_ERROR = "PostStartHookError"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    CREATE_CONTAINER_ERROR = "CreateContainerError"
    CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
    RUN_CONTAINER_ERROR = "RunContainerError"


class TerminatedReason(str, enum.Enum):
    COMPLETED = "Completed"
    ERROR = "Error"
    OOM_KILLED = "OOMKilled"
    CONTAINER_CANNOT_RUN = "ContainerCannotRun"


class ConditionType(str, enum.Enum):
    POD_SCHEDULED = "PodScheduled"
    INITIALIZED = "Initialized"
    CONTAINERS_READY = "ContainersReady"
    READY = "Ready"


# Exit code of a process killed by SIGKILL, as the shim reports it (128 + 9).
SIGKILL_EXIT_CODE = 137


def should_restart(restart_policy: RestartPolicy | str, exit_code: int) -> bool:
    """Whether a container that exited with `exit_code` is started again."""
    policy = RestartPolicy(restart_policy)
    if policy is RestartPolicy.ALWAYS:
        return True
    if policy is RestartPolicy.ON_FAILURE:
        return exit_code != 0
    return False


def termination_reason(exit_code: int, oom_killed: bool) -> TerminatedReason:
    """OOMKilled only for a SIGKILL death while the cgroup's oom_kill counter rose.

    The counter alone is not enough (another process of the container may have been the
    victim while this one exited on its own), nor is SIGKILL alone (a grace-period kill).
    """
    if exit_code == SIGKILL_EXIT_CODE and oom_killed:
        return TerminatedReason.OOM_KILLED
    return TerminatedReason.COMPLETED if exit_code == 0 else TerminatedReason.ERROR


def waiting_state(reason: WaitingReason | str, message: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"reason": reason.value if isinstance(reason, WaitingReason)
                             else reason}
    if message:
        state["message"] = message
    return {"waiting": state}


def running_state(started_at: str) -> dict[str, Any]:
    return {"running": {"startedAt": started_at}}


def terminated_state(exit_code: int, reason: TerminatedReason | str, started_at: str | None,
                     finished_at: str, message: str | None = None,
                     container_id: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": reason.value if isinstance(reason, TerminatedReason) else reason,
        "startedAt": started_at,
        "finishedAt": finished_at,
    }
    if exit_code > 128:
        state["signal"] = exit_code - 128
    if message:
        state["message"] = message
    if container_id:
        state["containerID"] = container_id
    return {"terminated": state}


@dataclass
class ContainerStatus:
    """The worker's view of one container; `to_dict` is its `containerStatuses[]` entry."""

    name: str
    state: dict[str, Any] = field(
        default_factory=lambda: waiting_state(WaitingReason.CONTAINER_CREATING))
    last_state: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    restart_count: int = 0
    container_id: str | None = None
    image: str = ""
    # A native sidecar (an init container with restartPolicy Always); not in `to_dict`.
    restartable: bool = False

    @property
    def kind(self) -> ContainerState:
        return ContainerState(next(iter(self.state)))

    @property
    def running(self) -> bool:
        return self.kind is ContainerState.RUNNING

    def mark_running(self, pid: int, started_at: str) -> None:
        self.state = running_state(started_at)
        self.container_id = f"tinykube://{pid}"
        self.ready = False
        self.started = False

    def mark_exited(self, exit_code: int, reason: TerminatedReason, finished_at: str,
                    message: str | None = None) -> None:
        started_at = self.state.get("running", {}).get("startedAt")
        self.state = terminated_state(exit_code, reason, started_at, finished_at, message,
                                      self.container_id)
        self.ready = False
        self.started = False

    def mark_waiting(self, reason: WaitingReason, message: str | None = None) -> None:
        """Waiting for a restart: the last termination moves to lastState, as Kubernetes shows."""
        if self.kind is ContainerState.TERMINATED:
            self.last_state = self.state
        self.state = waiting_state(reason, message)
        self.ready = False
        self.started = False

    @property
    def exit_code(self) -> int | None:
        return self.state.get("terminated", {}).get("exitCode")

    def to_dict(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": self.name,
            "state": self.state,
            "lastState": self.last_state,
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "image": self.image,
            # Typed clients (the official Python client) require imageID; there are no
            # images, so it is empty, as Kubernetes reports it before the image is pulled.
            "imageID": "",
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


def pod_phase(restart_policy: RestartPolicy | str, containers: list[ContainerStatus],
              sandbox_dead: bool = False, terminal: bool = False,
              init_containers: list[ContainerStatus] | None = None) -> PodPhase:
    """The kubelet's getPhase over the containers' current states. `terminal`: the pod is
    done on this node (deleted, its containers stopped): with every container terminated the
    phase is Succeeded or Failed whatever the restart policy, so a pod that a finalizer keeps
    in the store shows how it ended (the kubelet does this since Kubernetes 1.27)."""
    if sandbox_dead:
        return PodPhase.FAILED
    policy = RestartPolicy(restart_policy)
    pending_init = failed_init = pending_sidecars = sidecars_running = 0
    waiting = running = stopped = succeeded = 0
    for init in init_containers or []:
        kind = init.kind
        if init.restartable:
            if kind is ContainerState.RUNNING:
                sidecars_running += 1
                if not init.started:
                    pending_sidecars += 1
            elif kind is ContainerState.WAITING and not init.last_state.get("terminated"):
                pending_sidecars += 1
            continue  # a terminated sidecar is ignored (it was stopped, or restarts)
        if kind is ContainerState.TERMINATED:
            failed_init += init.exit_code != 0
        elif kind is ContainerState.WAITING and init.last_state.get("terminated"):
            failed_init += init.last_state["terminated"].get("exitCode") != 0
        else:
            pending_init += 1
    for container in containers:
        kind = container.kind
        if kind is ContainerState.RUNNING:
            running += 1
        elif kind is ContainerState.TERMINATED:
            stopped += 1
            if container.exit_code == 0:
                succeeded += 1
        elif container.last_state.get("terminated"):
            stopped += 1  # in back-off after a run: it has been started before
        else:
            waiting += 1
    if failed_init > 0 and policy is RestartPolicy.NEVER:
        return PodPhase.FAILED
    # A sidecar not started yet holds the pod Pending unless an app container ran before
    # (then the sidecar is restarting in a pod that was initialized).
    if pending_init > 0 or (pending_sidecars > 0 and running + stopped == 0):
        return PodPhase.PENDING
    running += sidecars_running
    if waiting > 0 or not containers:
        return PodPhase.PENDING
    if terminal and running == 0:
        return PodPhase.SUCCEEDED if stopped == succeeded else PodPhase.FAILED
    if running > 0 or policy is RestartPolicy.ALWAYS:
        return PodPhase.RUNNING
    if stopped == succeeded:
        return PodPhase.SUCCEEDED
    if policy is RestartPolicy.NEVER:
        return PodPhase.FAILED
    return PodPhase.RUNNING  # OnFailure: the failed containers are being restarted


def initialized(init_containers: list[ContainerStatus],
                containers: list[ContainerStatus]) -> tuple[bool, list[str]]:
    """The Initialized condition (the kubelet's GeneratePodInitializedCondition): every
    regular init container exited 0 and every sidecar started, or an app container has
    started once (the pod was initialized before; a restarting sidecar does not undo it).
    Returns (initialized, the incomplete init containers)."""
    incomplete = []
    for init in init_containers:
        if init.restartable:
            if not init.started:
                incomplete.append(init.name)
        elif init.exit_code != 0:
            incomplete.append(init.name)
    if any(c.kind is not ContainerState.WAITING or c.last_state.get("terminated")
           for c in containers):
        return True, incomplete
    return not incomplete, incomplete


def _condition(previous: dict[str | None, dict[str, Any]], kind: ConditionType, ok: bool, now: str,
               reason: str | None = None, message: str | None = None) -> dict[str, Any]:
    status = "True" if ok else "False"
    before = previous.get(kind.value)
    transition = before["lastTransitionTime"] if before and before.get("status") == status \
        and before.get("lastTransitionTime") else now
    condition: dict[str, Any] = {"type": kind.value, "status": status,
                                 "lastProbeTime": None, "lastTransitionTime": transition}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def pod_conditions(previous: list[dict[str, Any]] | None, phase: PodPhase,
                   containers: list[ContainerStatus], now: str,
                   init_containers: list[ContainerStatus] | None = None
                   ) -> list[dict[str, Any]]:
    """PodScheduled, Initialized, ContainersReady, Ready (no readiness gates)."""
    before = {c.get("type"): c for c in previous or []}
    finished = phase in (PodPhase.SUCCEEDED, PodPhase.FAILED)
    init_containers = init_containers or []
    # Sidecars count for readiness, before the app containers (as the kubelet lists them).
    counted = [c for c in init_containers if c.restartable] + containers
    unready = [c.name for c in counted if not c.ready]
    all_ready = bool(containers) and not unready and not finished
    if finished:
        reason, message = "PodCompleted", None
    elif unready:
        reason = "ContainersNotReady"
        message = f"containers with unready status: [{' '.join(unready)}]"
    else:
        reason, message = None, None
    is_initialized, incomplete = initialized(init_containers, containers)
    if phase is PodPhase.SUCCEEDED or (finished and is_initialized):
        init_condition = _condition(before, ConditionType.INITIALIZED, True, now,
                                    "PodCompleted")
    elif is_initialized:
        init_condition = _condition(before, ConditionType.INITIALIZED, True, now)
    else:
        init_condition = _condition(
            before, ConditionType.INITIALIZED, False, now, "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(incomplete)}]")
    return [
        _condition(before, ConditionType.POD_SCHEDULED, True, now),
        init_condition,
        _condition(before, ConditionType.CONTAINERS_READY, all_ready, now, reason, message),
        _condition(before, ConditionType.READY, all_ready, now, reason, message),
    ]


def pod_status(previous: dict[str, Any] | None, *, restart_policy: RestartPolicy | str,
               containers: list[ContainerStatus], pod_ip: str | None, host_ip: str | None,
               start_time: str | None, now: str, sandbox_dead: bool = False,
               message: str | None = None, reason: str | None = None,
               terminal: bool = False,
               init_containers: list[ContainerStatus] | None = None) -> dict[str, Any]:
    """The full `status` of a pod; equal input gives an equal dict (cheap change detection)."""
    previous = previous or {}
    phase = pod_phase(restart_policy, containers, sandbox_dead, terminal, init_containers)
    status: dict[str, Any] = {
        "phase": phase.value,
        "conditions": pod_conditions(previous.get("conditions"), phase, containers, now,
                                     init_containers),
        "containerStatuses": [c.to_dict() for c in containers],
    }
    if init_containers:
        status["initContainerStatuses"] = [c.to_dict() for c in init_containers]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if host_ip:
        status["hostIP"] = host_ip
        status["hostIPs"] = [{"ip": host_ip}]
    if start_time:
        status["startTime"] = start_time
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return status
