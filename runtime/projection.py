"""What files a configMap, secret, downwardAPI or projected volume holds (pure: the objects
come from a lookup function), as the kubelet's volume plugins compute their payloads.

`payload` raises `MissingSource` with the kubelet's message when a referenced ConfigMap,
Secret or key is missing and not optional: the pod then waits (FailedMount) until it exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import downward
from .atomicwriter import File, Payload

from tinykube.model import configdata
from tinykube.model.defaults import DEFAULT_FILE_MODE

# (kind, name) -> the object in the pod's namespace, or None
Lookup = Callable[[str, str], "dict[str, Any] | None"]

# volume source -> the kinds of object it reads
SOURCE_KINDS = {"configMap": "ConfigMap", "secret": "Secret"}


class MissingSource(ValueError):
    """A ConfigMap, Secret or key that is not there (and not optional)."""


def _object_files(kind: str, name: str, source: dict[str, Any], default_mode: int,
                  lookup: Lookup) -> Payload:
    optional = source.get("optional") is True
    obj = lookup(kind, name)
    if obj is None:
        if optional:
            return {}
        raise MissingSource(f'{kind.lower()} "{name}" not found')
    try:
        content = configdata.content(obj)
    except ValueError as e:
        raise MissingSource(f'{kind.lower()} "{name}": {e}') from None
    items = source.get("items")
    if not items:
        return {key: File(value, default_mode) for key, value in content.items()}
    files: Payload = {}
    for item in items:
        key = item["key"]
        if key not in content:
            if optional:
                continue
            what = "config" if kind == "ConfigMap" else "secret"
            raise MissingSource(f"{kind.lower()} references non-existent {what} key: {key}")
        mode = item.get("mode")
        files[item["path"]] = File(content[key], default_mode if mode is None else mode)
    return files


def _downward_files(pod: dict[str, Any], source: dict[str, Any], default_mode: int) -> Payload:
    containers = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or []}
    files: Payload = {}
    for item in source.get("items") or []:
        mode = item.get("mode")
        mode = default_mode if mode is None else mode
        try:
            if item.get("fieldRef") is not None:
                text = downward.field_ref(pod, item["fieldRef"].get("fieldPath", ""))
            else:
                ref = item.get("resourceFieldRef") or {}
                container = containers.get(ref.get("containerName"))
                if container is None:
                    raise MissingSource(f"resourceFieldRef: no container named "
                                        f"{ref.get('containerName')!r}")
                text = downward.resource_field(container, ref.get("resource", ""),
                                               ref.get("divisor"))
        except downward.DownwardError as e:
            raise MissingSource(f"downwardAPI {item.get('path')}: {e}") from None
        files[item["path"]] = File(text.encode(), mode)
    return files


def fs_group(pod: dict[str, Any]) -> int | None:
    group = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    return None if group is None else int(group)


def payload(volume: dict[str, Any], pod: dict[str, Any], lookup: Lookup) -> Payload:
    """The files of one configMap/secret/downwardAPI/projected volume. With an fsGroup
    every file is also group-readable (the kubelet's SetVolumeOwnership on a read-only
    volume: mode | 0440, group fsGroup)."""
    files = _payload(volume, pod, lookup)
    if fs_group(pod) is None:
        return files
    return {path: File(f.content, f.mode | 0o440) for path, f in files.items()}


def _payload(volume: dict[str, Any], pod: dict[str, Any], lookup: Lookup) -> Payload:
    if volume.get("configMap") is not None:
        source = volume["configMap"]
        return _object_files("ConfigMap", source.get("name", ""), source,
                             _mode(source), lookup)
    if volume.get("secret") is not None:
        source = volume["secret"]
        return _object_files("Secret", source.get("secretName", ""), source,
                             _mode(source), lookup)
    if volume.get("downwardAPI") is not None:
        return _downward_files(pod, volume["downwardAPI"], _mode(volume["downwardAPI"]))
    projected = volume.get("projected") or {}
    default_mode = _mode(projected)
    files: Payload = {}
    for source in projected.get("sources") or []:
        for field, kind in SOURCE_KINDS.items():
            if source.get(field) is not None:
                files.update(_object_files(kind, source[field].get("name", ""),
                                           source[field], default_mode, lookup))
        if source.get("downwardAPI") is not None:
            files.update(_downward_files(pod, source["downwardAPI"], default_mode))
        if source.get("serviceAccountToken") is not None:
            raise MissingSource("projected serviceAccountToken: tinykube issues no tokens")
    return files


def _mode(source: dict[str, Any]) -> int:
    mode = source.get("defaultMode")
    return DEFAULT_FILE_MODE if mode is None else mode


def referenced(volume: dict[str, Any]) -> set[tuple[str, str]]:
    """The (kind, name) objects a volume reads."""
    found: set[tuple[str, str]] = set()
    if volume.get("configMap") is not None:
        found.add(("ConfigMap", volume["configMap"].get("name", "")))
    if volume.get("secret") is not None:
        found.add(("Secret", volume["secret"].get("secretName", "")))
    for source in (volume.get("projected") or {}).get("sources") or []:
        for field, kind in SOURCE_KINDS.items():
            if source.get(field) is not None:
                found.add((kind, source[field].get("name", "")))
    return found


def uses_pod_metadata(volume: dict[str, Any]) -> bool:
    """Whether the files follow the pod's own labels/annotations (a downwardAPI part)."""
    if volume.get("downwardAPI") is not None:
        return True
    return any(s.get("downwardAPI") is not None
               for s in (volume.get("projected") or {}).get("sources") or [])


def memory_backed(volume: dict[str, Any]) -> bool:
    """Secret-bearing and downward volumes live on a tmpfs, as the kubelet wraps them in a
    memory emptyDir (a configMap volume is on disk)."""
    return volume.get("configMap") is None
