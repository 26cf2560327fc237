"""A container's environment, as the kubelet builds it (makeEnvironmentVariables):
`envFrom` first, in order, then `env`, later names winning; `$(VAR)` in `value` expands
against what is defined so far. Sources: the downward API (`fieldRef`,
`resourceFieldRef`), ConfigMaps and Secrets (`configMapKeyRef`, `secretKeyRef`, `envFrom`),
found through `lookup` in the pod's namespace.

A missing ConfigMap/Secret/key that is not optional is `MissingConfig` (the container waits
in CreateContainerConfigError and is tried again); `envFrom` keys that are not valid
variable names are skipped and reported in `skipped` (the kubelet's
InvalidEnvironmentVariableNames event).
"""

from __future__ import annotations

from typing import Any

from . import downward, spawn
from .containerspec import ContainerConfigError, expand
from .projection import Lookup

from tinykube.model import configdata, names

REF_KINDS = {"configMapKeyRef": "ConfigMap", "secretKeyRef": "Secret",
             "configMapRef": "ConfigMap", "secretRef": "Secret"}


class MissingConfig(ContainerConfigError):
    """A ConfigMap, Secret or key the environment needs is not there (yet)."""


def _nothing(kind: str, name: str) -> dict[str, Any] | None:
    return None


def referenced(container: dict[str, Any]) -> set[tuple[str, str]]:
    """The (kind, name) objects a container's environment reads."""
    found: set[tuple[str, str]] = set()
    for var in container.get("env") or []:
        for ref, kind in REF_KINDS.items():
            source = (var.get("valueFrom") or {}).get(ref)
            if source is not None:
                found.add((kind, source.get("name", "")))
    for source in container.get("envFrom") or []:
        for ref, kind in REF_KINDS.items():
            if source.get(ref) is not None:
                found.add((kind, source[ref].get("name", "")))
    return found


def _text(value: bytes, where: str) -> str:
    if b"\0" in value:
        raise ContainerConfigError(f"{where}: the value contains a NUL byte (environment "
                                   "strings are C strings)")
    return value.decode("utf-8", "surrogateescape")


def _content(kind: str, name: str, namespace: str, optional: bool,
             lookup: Lookup) -> dict[str, bytes] | None:
    obj = lookup(kind, name)
    if obj is None:
        if optional:
            return None
        raise MissingConfig(f'{kind.lower()} "{name}" not found')
    try:
        return configdata.content(obj)
    except ValueError as e:
        raise ContainerConfigError(f"{kind} {namespace}/{name}: {e}") from None


def container_env(pod: dict[str, Any], container: dict[str, Any], hostname: str,
                  pod_ip: str | None, host_ip: str | None, where: str,
                  lookup: Lookup = _nothing, skipped: list[str] | None = None
                  ) -> dict[str, str]:
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    env: dict[str, str] = {"HOSTNAME": hostname, "PATH": spawn.DEFAULT_PATH, "HOME": "/root"}
    for i, source in enumerate(container.get("envFrom") or []):
        ref_name = "configMapRef" if source.get("configMapRef") is not None else "secretRef"
        ref = source.get(ref_name) or {}
        kind = REF_KINDS[ref_name]
        content = _content(kind, ref.get("name", ""), namespace, ref.get("optional") is True,
                           lookup)
        invalid = []
        for key, value in (content or {}).items():
            name = (source.get("prefix") or "") + key
            if names.env_var_name(name):
                invalid.append(key)
                continue
            env[name] = _text(value, f"{where}.envFrom[{i}]")
        if invalid and skipped is not None:
            skipped.append(f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom "
                           f"{kind.lower()} {namespace}/{ref.get('name')} were skipped since "
                           "they are considered invalid environment variable names.")
    for i, var in enumerate(container.get("env") or []):
        name = var.get("name")
        e_where = f"{where}.env[{i}]"
        if not name:
            raise ContainerConfigError(f"{e_where}.name: required")
        if var.get("value") is not None:
            env[name] = expand(str(var["value"]), env)
            continue
        source = var.get("valueFrom") or {}
        try:
            if source.get("fieldRef") is not None:
                env[name] = downward.field_ref(pod, source["fieldRef"].get("fieldPath", ""),
                                               pod_ip, host_ip)
            elif source.get("resourceFieldRef") is not None:
                ref = source["resourceFieldRef"]
                env[name] = downward.resource_field(_named(pod, container, ref),
                                                    ref.get("resource", ""), ref.get("divisor"))
            elif source.get("configMapKeyRef") is not None or \
                    source.get("secretKeyRef") is not None:
                found = _key_ref(source, namespace, lookup)
                if found is not None:
                    env[name] = _text(found, e_where)
            elif source:
                raise ContainerConfigError(f"{e_where}.valueFrom: no known source")
            else:
                env[name] = ""
        except downward.DownwardError as e:
            raise ContainerConfigError(f"{e_where}.valueFrom: {e}") from None
    return env


def _named(pod: dict[str, Any], own: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    """The container a resourceFieldRef reads: its `containerName`, else the env's own."""
    wanted = ref.get("containerName")
    if not wanted or wanted == own.get("name"):
        return own
    for other in (pod.get("spec") or {}).get("containers") or []:
        if other.get("name") == wanted:
            return other
    raise downward.DownwardError(f"container {wanted} not found")


def _key_ref(source: dict[str, Any], namespace: str, lookup: Lookup) -> bytes | None:
    ref_name = "configMapKeyRef" if source.get("configMapKeyRef") is not None else "secretKeyRef"
    ref = source[ref_name]
    kind, name, key = REF_KINDS[ref_name], ref.get("name", ""), ref.get("key", "")
    optional = ref.get("optional") is True
    content = _content(kind, name, namespace, optional, lookup)
    if content is None:
        return None
    if key not in content:
        if optional:
            return None
        raise MissingConfig(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return content[key]
