"""From a container's spec to what is launched: environment, argv, limits, user, grace.

Pure functions over the Pod dict (no I/O), so they are unit-testable and the pod worker
reads as lifecycle only. Errors are `ContainerConfigError` (Kubernetes'
CreateContainerConfigError) naming the field.
"""

from __future__ import annotations

import re
from typing import Any

from . import spawn
from .cgroups import Limits

from tinykube.model import quantity, security

# A pod annotation that opts its containers back into a writable host tree (the default is a
# read-only one; `privileged: true` implies writable too).
HOST_ROOT_ANNOTATION = "tinykube.io/host-root"
HOST_ROOT_VALUES = ("read-only", "writable")

DEFAULT_GRACE_SECONDS = 30
PIDS_RESOURCE = "tinykube.io/pids"
MAX_CPU_MILLIS = (2**44 - 1) // 100  # kernel max_cfs_runtime (us) over a 100 ms period
MAX_PIDS = 4 * 1024 * 1024  # PID_MAX_LIMIT on 64-bit: pids.max refuses more
MAX_MEMORY_BYTES = 2**63 - 1


class ContainerConfigError(ValueError):
    """The container spec cannot be turned into a launch (CreateContainerConfigError)."""


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`,
    references to undefined names stay as written."""
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))
    return _VAR_REF.sub(replace, text)


def container_env(pod: dict[str, Any], container: dict[str, Any], hostname: str,
                  pod_ip: str | None, host_ip: str | None, where: str,
                  **sources: Any) -> dict[str, str]:
    """The container's environment (runtime/envresolve.py builds it)."""
    from .envresolve import container_env as build  # envresolve imports this module

    return build(pod, container, hostname, pod_ip, host_ip, where, **sources)


def container_argv(container: dict[str, Any], env: dict[str, str], where: str) -> list[str]:
    argv = list(container.get("command") or []) + list(container.get("args") or [])
    if not argv:
        raise ContainerConfigError(f"{where}.command: required (tinykube has no images, so "
                                   "there is no image entrypoint to fall back to)")
    return [expand(str(a), env) for a in argv]


def container_limits(container: dict[str, Any], where: str) -> Limits:
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    try:
        cpu = quantity.cpu_millis(limits["cpu"]) if "cpu" in limits else None
        memory = quantity.memory_bytes(limits["memory"]) if "memory" in limits else None
        pids = quantity.whole_number(limits[PIDS_RESOURCE]) if PIDS_RESOURCE in limits else None
    except quantity.QuantityError as e:
        raise ContainerConfigError(f"{where}.resources.limits: {e}") from None
    try:
        # Only an explicit request: Kubernetes would default it to the limit, and a 200m limit
        # would then also mean a tiny share (weight 8 of 100) beside unlimited neighbours.
        request = quantity.cpu_millis(requests["cpu"]) if "cpu" in requests else None
    except quantity.QuantityError as e:
        raise ContainerConfigError(f"{where}.resources.requests.cpu: {e}") from None
    # Clamp to what the kernel accepts (a larger value is no tighter a limit): cfs_quota_us
    # at most 2^44-1 us per 100 ms period, pids.max at most PID_MAX_LIMIT, memory an int64.
    return Limits(cpu_millis=None if cpu is None else min(cpu, MAX_CPU_MILLIS),
                  memory_bytes=None if memory is None else min(memory, MAX_MEMORY_BYTES),
                  pids=None if pids is None else min(pids, MAX_PIDS),
                  cpu_request_millis=None if request is None else min(request, MAX_CPU_MILLIS))


def run_as(pod: dict[str, Any], container: dict[str, Any]) -> tuple[int | None, int | None]:
    """runAsUser/runAsGroup: the container's securityContext overrides the pod's."""
    pod_ctx = (pod.get("spec") or {}).get("securityContext") or {}
    ctx = container.get("securityContext") or {}
    user = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
    group = ctx.get("runAsGroup", pod_ctx.get("runAsGroup"))
    return (int(user) if user is not None else None, int(group) if group is not None else None)


def _security_context(pod: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    """A field of the container's securityContext, else of the pod's (Kubernetes' rule for the
    fields both have)."""
    ctx = container.get("securityContext") or {}
    if ctx.get(key) is not None:
        return ctx[key]
    return ((pod.get("spec") or {}).get("securityContext") or {}).get(key)


def check_non_root(pod: dict[str, Any], container: dict[str, Any]) -> None:
    """runAsNonRoot, as the kubelet checks it before a start (CreateContainerConfigError).
    There is no image whose USER could say otherwise: without runAsUser the app runs as root."""
    if _security_context(pod, container, "runAsNonRoot") is not True:
        return
    meta = pod.get("metadata") or {}
    who = (f"pod: \"{meta.get('name')}_{meta.get('namespace') or 'default'}"
           f"({meta.get('uid')})\", container: {container.get('name')}")
    user, _ = run_as(pod, container)
    if user is None:
        raise ContainerConfigError(f"container has runAsNonRoot and image will run as root "
                                   f"({who})")
    if user == 0:
        raise ContainerConfigError(f"container's runAsUser breaks non-root policy ({who})")


def capability_mask(container: dict[str, Any]) -> int:
    """The bounding set, as containerd builds it: the default set, `ALL` in add gives every
    capability, `ALL` in drop none, then the named adds and drops."""
    caps = (container.get("securityContext") or {}).get("capabilities") or {}
    add = [security.capability_name(c) for c in caps.get("add") or []]
    drop = [security.capability_name(c) for c in caps.get("drop") or []]
    names = set(security.DEFAULT_CAPABILITIES)
    if "ALL" in add:
        names = set(security.CAPABILITIES)
    if "ALL" in drop:
        names = set()
    names |= {c for c in add if c != "ALL"}
    names -= set(drop)
    return sum(1 << security.CAPABILITY_BITS[n] for n in names if n in security.CAPABILITY_BITS)


def isolation(pod: dict[str, Any], container: dict[str, Any], where: str,
              hidden: tuple[str, ...] = ()) -> spawn.Isolation:
    """What tk-shim does to confine the container (see README, "Isolation")."""
    spec = pod.get("spec") or {}
    ctx = container.get("securityContext") or {}
    privileged = ctx.get("privileged") is True
    if spec.get("hostPID") is True:
        pid = spawn.PidNamespace.HOST
    elif spec.get("shareProcessNamespace") is True:
        pid = spawn.PidNamespace.POD
    else:
        pid = spawn.PidNamespace.CONTAINER
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    host_root = annotations.get(HOST_ROOT_ANNOTATION, "read-only")
    if host_root not in HOST_ROOT_VALUES:
        raise ContainerConfigError(f"metadata.annotations[{HOST_ROOT_ANNOTATION}]: must be one "
                                   f"of {', '.join(HOST_ROOT_VALUES)}, got {host_root!r}")
    if ctx.get("readOnlyRootFilesystem") is True:
        readonly = True
    else:
        readonly = not privileged and host_root == "read-only"
    # RuntimeDefault unless the spec says Unconfined (kubelet --seccomp-default); a
    # privileged container is unconfined, as containerd does it.
    profile = (_security_context(pod, container, "seccompProfile") or {}).get("type")
    seccomp = not privileged and profile != "Unconfined"
    pod_ctx = spec.get("securityContext") or {}
    groups = [int(g) for g in pod_ctx.get("supplementalGroups") or []]
    if pod_ctx.get("fsGroup") is not None:
        groups.append(int(pod_ctx["fsGroup"]))
    return spawn.Isolation(
        pid_namespace=pid,
        capabilities=None if privileged else capability_mask(container),
        seccomp=seccomp,
        no_new_privs=ctx.get("allowPrivilegeEscalation") is False,
        readonly_host=readonly,
        masked_paths=not privileged,
        private_tmp=True,
        groups=tuple(dict.fromkeys(groups)),
        hidden=hidden,
    )


def grace_seconds(pod: dict[str, Any]) -> float:
    meta = pod.get("metadata") or {}
    for value in (meta.get("deletionGracePeriodSeconds"),
                  (pod.get("spec") or {}).get("terminationGracePeriodSeconds")):
        if value is not None:
            return max(0.0, float(value))
    return DEFAULT_GRACE_SECONDS
