"""Pod and container security: the capability names, the runtime's default set, and the
checks Kubernetes' API server makes on `securityContext`, `hostPID` and friends.

The runtime (runtime/containerspec.py) turns the same fields into what tk-shim enforces; the
names and numbers live here so validation and enforcement cannot disagree.
"""

from __future__ import annotations

from typing import Any

from tinykube.model.errors import FieldError

# linux/capability.h, in bit order.
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
    "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
    "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
CAPABILITY_BITS = {name: bit for bit, name in enumerate(CAPABILITIES)}

# containerd's and CRI-O's default set (what a container gets unless its spec says otherwise).
DEFAULT_CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)

SECCOMP_TYPES = ("RuntimeDefault", "Unconfined", "Localhost")
PROC_MOUNT_TYPES = ("Default", "Unmasked")


def capability_name(value: str) -> str:
    """`NET_ADMIN`, `net_admin` and `CAP_NET_ADMIN` all name one capability (containerd
    upper-cases and prefixes `CAP_`); `ALL` stays `ALL`."""
    return value.upper().removeprefix("CAP_")


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _validate_seccomp(profile: Any, path: str) -> list[FieldError]:
    profile = _d(profile)
    kind, local = profile.get("type"), profile.get("localhostProfile")
    errors: list[FieldError] = []
    if kind == "Localhost":
        if not local:
            errors.append(FieldError.required(f"{path}.localhostProfile",
                                              "must be set when seccomp type is Localhost"))
        errors.append(FieldError.forbidden(
            f"{path}.type", "Localhost is not supported by tinykube (use RuntimeDefault or "
            "Unconfined)"))
    elif local is not None:
        errors.append(FieldError.invalid(f"{path}.localhostProfile", local,
                                         "can only be set when seccomp type is Localhost"))
    return errors


def validate_container_security(context: Any, path: str) -> list[FieldError]:
    """A container's securityContext, beyond its shape (which the schema checks)."""
    sc = _d(context)
    errors: list[FieldError] = []
    caps = _d(sc.get("capabilities"))
    for field in ("add", "drop"):
        values = caps.get(field)
        for i, value in enumerate(values if isinstance(values, list) else []):
            if isinstance(value, str) and capability_name(value) not in CAPABILITY_BITS \
                    and capability_name(value) != "ALL":
                errors.append(FieldError.unsupported(f"{path}.capabilities.{field}[{i}]",
                                                     value, ["ALL", *CAPABILITIES]))
    if sc.get("allowPrivilegeEscalation") is False:
        if sc.get("privileged") is True:
            errors.append(FieldError.invalid(
                path, sc, "cannot set `allowPrivilegeEscalation` to false and `privileged` to "
                "true"))
        added = caps.get("add")
        for value in added if isinstance(added, list) else []:
            if value == "CAP_SYS_ADMIN":
                errors.append(FieldError.invalid(
                    path, sc, "cannot set `allowPrivilegeEscalation` to false and "
                    "`capabilities.Add` CAP_SYS_ADMIN"))
    if sc.get("procMount") == "Unmasked":
        # Kubernetes allows Unmasked only in a user namespace, which tinykube has not.
        errors.append(FieldError.invalid(f"{path}.procMount", "Unmasked",
                                         "`hostUsers` must be false to use `Unmasked`"))
    if "seccompProfile" in sc:
        errors += _validate_seccomp(sc["seccompProfile"], f"{path}.seccompProfile")
    return errors


def validate_pod_security(spec: dict[str, Any], path: str) -> list[FieldError]:
    """hostPID/shareProcessNamespace, the pod securityContext and host ports."""
    errors: list[FieldError] = []
    if spec.get("shareProcessNamespace") is True and spec.get("hostPID") is True:
        errors.append(FieldError.invalid(f"{path}.securityContext.shareProcessNamespace", True,
                                         "ShareProcessNamespace and HostPID cannot both be "
                                         "enabled"))
    sc = _d(spec.get("securityContext"))
    if "seccompProfile" in sc:
        errors += _validate_seccomp(sc["seccompProfile"],
                                    f"{path}.securityContext.seccompProfile")
    if spec.get("hostNetwork") is True:
        for i, container in enumerate(spec.get("containers") or []):
            for j, port in enumerate(_d(container).get("ports") or []):
                port = _d(port)
                host_port = port.get("hostPort")
                if host_port not in (None, port.get("containerPort")):
                    errors.append(FieldError.invalid(
                        f"{path}.containers[{i}].ports[{j}].hostPort", host_port,
                        "must match `containerPort` when `hostNetwork` is true"))
    return errors
