"""Validation of user-submitted objects, with Kubernetes' field paths and messages.

`validate(obj)` runs three passes, each only when the previous one found the object sound
enough to look at:

1. limits (`schema.check_document_limits`): depth, size, node count. Never recurses.
2. shape (`schema.SCHEMAS`): unknown fields and wrong types. Like Kubernetes' strict decoding,
   these alone are reported when present (later passes trust the types).
3. meaning: names, uniqueness, references between fields, selectors vs template labels,
   strategy arithmetic. Value errors from the schema (ranges, enums) join these.

Validation does not depend on defaults having been applied: a missing field is treated as
its default. The API server may call `apply_defaults` before or after `validate`.

`validate_update(old, new)` checks the immutability rules of updates (call both on updates).
"""

from __future__ import annotations

import copy
import ipaddress
import json
import posixpath
import re
from typing import Any

from tinykube import labels as label_selectors
from tinykube.model import configdata, names, quantity, schema, security
from tinykube.model.defaults import apply_defaults
from tinykube.model.errors import FieldError
from tinykube.model.kinds import KINDS

MAX_ANNOTATIONS_BYTES = 256 * 1024
# Downward API fields (validEnvDownwardAPIFieldPathExpressions, and the volume's subset);
# `metadata.labels['k']` / `metadata.annotations['k']` are allowed in both.
ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs",
                   "status.podIP", "status.podIPs")
VOLUME_FIELD_PATHS = ("metadata.annotations", "metadata.labels", "metadata.name",
                      "metadata.namespace", "metadata.uid")
RESOURCE_FIELDS = ("limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu",
                   "requests.ephemeral-storage", "requests.memory")
CPU_DIVISORS = ("1m", "1")
MEMORY_DIVISORS = ("1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi",
                   "1Ei")
FILE_MODE_MESSAGE = "must be a number between 0 and 0777 (octal), both inclusive"
_SUBSCRIPT = re.compile(r"metadata\.(labels|annotations)\['(.*)'\]")
_PERCENT = re.compile(r"[0-9]+%")


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _name_errors(path: str, value: Any, check: Any) -> list[FieldError]:
    if not isinstance(value, str):
        return []
    messages = check(value)
    return [FieldError.invalid(path, value, "; ".join(messages))] if messages else []


# --- entry points --------------------------------------------------------------------------

def validate(obj: Any) -> list[FieldError]:
    """Every problem with `obj` (a user-submitted object); [] when it is valid."""
    if not isinstance(obj, dict):
        return [FieldError.invalid("", obj, "an object must be a mapping")]
    errors = schema.check_document_limits(obj)
    if errors:
        return errors
    errors = _check_type_meta(obj)
    if errors:
        return errors
    kind = obj["kind"]
    report = schema.check(schema.SCHEMAS[kind], obj)
    if report.structural:
        return report.structural
    errors = list(report.values)
    errors += validate_object_meta(obj.get("metadata"), "metadata", kind)
    spec = _d(obj.get("spec"))
    if kind == "Pod":
        errors += validate_pod_spec(spec, "spec")
    elif kind == "PersistentVolumeClaim":
        errors += _validate_pvc_spec(spec, "spec")
    elif kind == "Service":
        errors += validate_service_spec(spec, "spec")
    elif kind == "EndpointSlice":
        errors += _validate_endpoint_slice(obj)
    elif kind == "ConfigMap":
        errors += configdata.validate_config_map(obj)
    elif kind == "Secret":
        errors += configdata.validate_secret(obj)
    elif kind == "Node":
        errors += _validate_node_spec(spec, "spec")
    elif kind == "Lease":
        pass  # the schema says it all
    else:
        errors += _validate_controller(kind, spec, "spec")
    return _unique(errors)


def validate_update(old: Any, new: Any) -> list[FieldError]:
    """What an update may not change (callers also run `validate(new)`; this does not repeat
    it). Both objects are compared with defaults applied, so omitting a defaulted field is
    not a change. Safe on malformed objects."""
    errors: list[FieldError] = []
    if not isinstance(old, dict) or not isinstance(new, dict):
        return errors
    old, new = apply_defaults(copy.deepcopy(old)), apply_defaults(copy.deepcopy(new))
    for field in ("apiVersion", "kind"):
        if old.get(field) != new.get(field):
            errors.append(FieldError.invalid(field, new.get(field), "field is immutable"))
    old_meta, new_meta = _d(old.get("metadata")), _d(new.get("metadata"))
    for field in ("name", "namespace"):
        if old_meta.get(field) != new_meta.get(field):
            errors.append(FieldError.invalid(f"metadata.{field}", new_meta.get(field),
                                             "field is immutable"))
    if new_meta.get("uid") and old_meta.get("uid") and new_meta["uid"] != old_meta["uid"]:
        errors.append(FieldError.invalid("metadata.uid", new_meta["uid"], "field is immutable"))
    kind = new.get("kind")
    old_spec, new_spec = _d(old.get("spec")), _d(new.get("spec"))
    if (kind in ("ReplicaSet", "Deployment", "StatefulSet")
            and old_spec.get("selector") != new_spec.get("selector")):
        errors.append(FieldError.invalid("spec.selector", new_spec.get("selector"),
                                             "field is immutable"))
    if kind == "StatefulSet":
        mutable = ("replicas", "template", "updateStrategy", "minReadySeconds",
                   "persistentVolumeClaimRetentionPolicy", "revisionHistoryLimit", "selector")
        if _without(old_spec, mutable) != _without(new_spec, mutable):
            errors.append(FieldError.forbidden(
                "spec", "updates to statefulset spec for fields other than 'replicas', "
                "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy', "
                "'revisionHistoryLimit' and 'minReadySeconds' are forbidden"))
    elif kind == "Pod":
        if _pod_spec_frozen(old_spec) != _pod_spec_frozen(new_spec):
            errors.append(FieldError.forbidden(
                "spec", "pod updates may not change fields other than "
                "`spec.containers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` "
                "(only additions to existing tolerations) and "
                "`spec.terminationGracePeriodSeconds`"))
    elif kind == "Service":
        errors += _validate_service_update(old_spec, new_spec)
    elif kind in ("ConfigMap", "Secret"):
        errors += configdata.validate_update(old, new)
    elif (kind == "PersistentVolumeClaim"
          and _without(old_spec, ("resources",)) != _without(new_spec, ("resources",))):
        errors.append(FieldError.forbidden(
            "spec", "spec is immutable after creation except resources.requests"))
    return errors


def validate_status(kind: str, status: Any) -> list[FieldError]:
    """Problems with a status write (`/status`), checked like spec writes: types, enums and
    unknown fields first, then value errors."""
    report = schema.check_status(kind, status)
    return report.structural or report.values


def _without(spec: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k not in fields}


def _pod_spec_frozen(spec: dict[str, Any]) -> dict[str, Any]:
    frozen = _without(spec, ("activeDeadlineSeconds", "tolerations",
                             "terminationGracePeriodSeconds"))
    for field in ("containers", "initContainers"):
        if field in spec:
            frozen[field] = [_without(_d(c), ("image",)) for c in _l(spec.get(field))]
    return frozen


def _unique(errors: list[FieldError]) -> list[FieldError]:
    return list(dict.fromkeys(errors))


# --- type and object meta ------------------------------------------------------------------

def _check_type_meta(obj: dict[str, Any]) -> list[FieldError]:
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    errors = []
    if not api_version:
        errors.append(FieldError.required("apiVersion"))
    elif not isinstance(api_version, str):
        errors.append(FieldError.invalid("apiVersion", api_version, "must be a string"))
    if not kind:
        errors.append(FieldError.required("kind"))
    elif not isinstance(kind, str):
        errors.append(FieldError.invalid("kind", kind, "must be a string"))
    if errors:
        return errors
    info = next((k for k in KINDS if k.kind == kind), None)
    if info is None:
        return [FieldError.invalid("kind", kind,
                                   f'no kind "{kind}" is registered for version "{api_version}"')]
    if info.api_version != api_version:
        return [FieldError.invalid(
            "apiVersion", api_version,
            f'no kind "{kind}" is registered for version "{api_version}" '
            f'(use apiVersion "{info.api_version}")')]
    if not info.user:
        return [FieldError.forbidden("kind", f"{kind} objects are written by tinykube itself")]
    return []


def validate_object_meta(meta: Any, path: str, kind: str) -> list[FieldError]:
    meta = _d(meta)
    errors: list[FieldError] = []
    name, generate_name = meta.get("name"), meta.get("generateName")
    # StatefulSet pods are named <set>-<ordinal> and use that name as hostname.
    name_rule = {"StatefulSet": names.dns1123_label,
                 # A service's name is a DNS label of its own (`<svc>.<ns>.svc`).
                 "Service": names.dns1035_label}.get(kind, names.dns1123_subdomain)
    if name is None or name == "":
        if not generate_name:
            errors.append(FieldError.required(f"{path}.name", "name or generateName is required"))
    else:
        errors += _name_errors(f"{path}.name", name, name_rule)
    if generate_name:
        # A prefix: valid once the random suffix is appended.
        messages = name_rule(generate_name.rstrip("-") + "-x" if generate_name.endswith("-")
                             else generate_name + "x")
        if messages:
            errors.append(FieldError.invalid(f"{path}.generateName", generate_name,
                                             "; ".join(messages)))
    if meta.get("namespace"):
        errors += _name_errors(f"{path}.namespace", meta["namespace"], names.dns1123_label)
    errors += label_selectors.validate_labels(meta.get("labels"), f"{path}.labels")
    errors += _validate_annotations(meta.get("annotations"), f"{path}.annotations")
    return errors


def _validate_annotations(annotations: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    total = 0
    for key, value in _d(annotations).items():
        errors += _name_errors(path, key, names.qualified_name)
        total += len(key) + (len(value) if isinstance(value, str) else 0)
    if total > MAX_ANNOTATIONS_BYTES:
        errors.append(FieldError.too_long(path, "", MAX_ANNOTATIONS_BYTES))
    return errors


# --- pods ----------------------------------------------------------------------------------

def validate_pod_spec(spec: dict[str, Any], path: str, *, in_template: bool = False,
                      claim_templates: tuple[str, ...] = ()) -> list[FieldError]:
    """A pod spec, standalone or inside a controller's template (then only `Always`
    restarts). `claim_templates`: StatefulSet volume claim names mounts may refer to."""
    errors: list[FieldError] = []
    policy = spec.get("restartPolicy")
    if in_template and policy not in (None, "Always"):
        errors.append(FieldError.unsupported(f"{path}.restartPolicy", policy, ["Always"]))
    for field in ("hostname", "subdomain"):
        errors += _name_errors(f"{path}.{field}", spec.get(field), names.dns1123_label)
    errors += _name_errors(f"{path}.nodeName", spec.get("nodeName"), names.dns1123_subdomain)
    errors += label_selectors.validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector")
    volume_names, volume_errors = _validate_volumes(_l(spec.get("volumes")), f"{path}.volumes")
    errors += volume_errors
    volume_names |= set(claim_templates)
    file_volumes = frozenset(_d(v).get("name") for v in _l(spec.get("volumes"))
                             if any(_d(v).get(s) is not None for s in schema.PROJECTED_SOURCES))
    seen: set[str] = set()
    for i, container in enumerate(_l(spec.get("containers"))):
        c_path = f"{path}.containers[{i}]"
        name = _d(container).get("name")
        if isinstance(name, str):
            if name in seen:
                errors.append(FieldError.duplicate(f"{c_path}.name", name))
            seen.add(name)
        errors += _validate_container(_d(container), c_path, volume_names, file_volumes)
        errors += security.validate_container_security(_d(container).get("securityContext"),
                                                       f"{c_path}.securityContext")
        if _d(container).get("restartPolicy") is not None:
            errors.append(FieldError.forbidden(f"{c_path}.restartPolicy",
                                               "may not be set for non-init containers"))
        errors += _validate_lifecycle(_d(container), c_path, spec)
    errors += _validate_init_containers(spec, path, volume_names, seen)
    errors += security.validate_pod_security(spec, path)
    return errors


def _validate_init_containers(spec: dict[str, Any], path: str, volume_names: set[str],
                              names_taken: set[str]) -> list[FieldError]:
    """Init containers as Kubernetes' validateInitContainers: names unique among all the
    pod's containers; only native sidecars (`restartPolicy: Always`) may have probes or
    lifecycle hooks (a run-to-completion container has no "ready" and no stop to hook)."""
    errors: list[FieldError] = []
    for i, container in enumerate(_l(spec.get("initContainers"))):
        c_path = f"{path}.initContainers[{i}]"
        container = _d(container)
        name = container.get("name")
        if isinstance(name, str):
            if name in names_taken:
                errors.append(FieldError.duplicate(f"{c_path}.name", name))
            names_taken.add(name)
        errors += _validate_container(container, c_path, volume_names)
        errors += security.validate_container_security(container.get("securityContext"),
                                                       f"{c_path}.securityContext")
        policy = container.get("restartPolicy")
        if policy is not None and policy != "Always":
            errors.append(FieldError.unsupported(f"{c_path}.restartPolicy", policy,
                                                 ["Always"]))
        if policy == "Always":
            errors += _validate_lifecycle(container, c_path, spec)
            continue
        for field in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
            if container.get(field) is not None:
                errors.append(FieldError.forbidden(
                    f"{c_path}.{field}",
                    "may not be set for init containers without restartPolicy=Always"))
    return errors


LIFECYCLE_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")


def _validate_lifecycle(container: dict[str, Any], path: str,
                        spec: dict[str, Any]) -> list[FieldError]:
    """postStart/preStop: one handler each (Kubernetes' validateLifecycleHandler); a sleep
    no longer than the pod's grace period, which bounds a preStop anyway."""
    errors: list[FieldError] = []
    lifecycle = _d(container.get("lifecycle"))
    port_names = {str(p["name"]) for p in map(_d, _l(container.get("ports")))
                  if isinstance(p.get("name"), str)}
    grace = spec.get("terminationGracePeriodSeconds")
    grace = grace if isinstance(grace, int) else 30
    for hook in ("postStart", "preStop"):
        handler = lifecycle.get(hook)
        if not isinstance(handler, dict):
            continue
        h_path = f"{path}.lifecycle.{hook}"
        kinds = [k for k in LIFECYCLE_HANDLERS if handler.get(k) is not None]
        if not kinds:
            errors.append(FieldError.required(h_path, "must specify a handler type"))
        for extra in kinds[1:]:
            errors.append(FieldError.forbidden(f"{h_path}.{extra}",
                                               "may not specify more than 1 handler type"))
        if kinds[:1] in (["httpGet"], ["tcpSocket"]):
            errors += _validate_probe({kinds[0]: handler[kinds[0]]}, h_path, port_names,
                                      single_success=False)
        seconds = _d(handler.get("sleep")).get("seconds")
        if isinstance(seconds, int) and not 0 <= seconds <= grace:
            errors.append(FieldError.invalid(
                f"{h_path}.sleep", seconds, "must be non-negative and less than "
                f"terminationGracePeriodSeconds ({grace})"))
    return errors


def _validate_volumes(volumes: list[Any], path: str) -> tuple[set[str], list[FieldError]]:
    """Volume names (DNS labels, unique), one source each; returns (names, errors)."""
    seen: set[str] = set()
    errors: list[FieldError] = []
    for i, volume in enumerate(volumes):
        v_path = f"{path}[{i}]"
        volume = _d(volume)
        name = volume.get("name")
        if isinstance(name, str):
            errors += _name_errors(f"{v_path}.name", name, names.dns1123_label)
            if name in seen:
                errors.append(FieldError.duplicate(f"{v_path}.name", name))
            seen.add(name)
        sources = schema.volume_sources(volume)
        if len(sources) > 1:
            errors.append(FieldError.forbidden(f"{v_path}.{sources[1]}",
                                               "may not specify more than 1 volume type"))
        claim = _d(volume.get("persistentVolumeClaim")).get("claimName")
        errors += _name_errors(f"{v_path}.persistentVolumeClaim.claimName", claim,
                               names.dns1123_subdomain)
        errors += _validate_file_volume(volume, v_path)
    return seen, errors


def _file_mode(value: Any, path: str) -> list[FieldError]:
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= 0o777:
        return [FieldError.invalid(path, value, FILE_MODE_MESSAGE)]
    return []


def _relative_file_path(value: Any, path: str) -> list[FieldError]:
    """validateLocalNonReservedPath: where a projected file goes inside its volume."""
    if not isinstance(value, str):
        return []
    if not value:
        return [FieldError.required(path)]
    if value.startswith("/"):
        return [FieldError.invalid(path, value, "must be a relative path")]
    if ".." in value.split("/"):
        return [FieldError.invalid(path, value, "must not contain '..'")]
    if value.startswith(".."):
        return [FieldError.invalid(path, value, "must not start with '..'")]
    return []


def _key_to_paths(source: dict[str, Any], path: str, seen: dict[str, str]) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, item in enumerate(_l(source.get("items"))):
        i_path = f"{path}.items[{i}]"
        item = _d(item)
        key = item.get("key")
        if key == "":
            errors.append(FieldError.required(f"{i_path}.key"))
        elif isinstance(key, str):
            messages = configdata.key_errors(key)
            if messages:
                errors.append(FieldError.invalid(f"{i_path}.key", key, "; ".join(messages)))
        errors += _relative_file_path(item.get("path"), f"{i_path}.path")
        errors += _file_mode(item.get("mode"), f"{i_path}.mode")
        errors += _unique_path(item.get("path"), f"{i_path}.path", seen)
    return errors


def _unique_path(value: Any, path: str, seen: dict[str, str]) -> list[FieldError]:
    if not isinstance(value, str) or not value:
        return []
    normal = posixpath.normpath(value)
    if normal in seen:
        return [FieldError.invalid(path, value, f"conflicting duplicate paths ({seen[normal]})")]
    seen[normal] = path
    return []


def _object_name(value: Any, path: str) -> list[FieldError]:
    if value in (None, ""):
        return [FieldError.required(path)]
    return _name_errors(path, value, names.dns1123_subdomain)


def _downward_items(source: dict[str, Any], path: str, seen: dict[str, str]
                    ) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, item in enumerate(_l(source.get("items"))):
        i_path = f"{path}.items[{i}]"
        item = _d(item)
        errors += _relative_file_path(item.get("path"), f"{i_path}.path")
        errors += _unique_path(item.get("path"), f"{i_path}.path", seen)
        errors += _file_mode(item.get("mode"), f"{i_path}.mode")
        field_ref, resource_ref = item.get("fieldRef"), item.get("resourceFieldRef")
        if field_ref is not None and resource_ref is not None:
            errors.append(FieldError.invalid(i_path, "resource", "fieldRef and resourceFieldRef "
                                             "can not be specified simultaneously"))
        elif field_ref is not None:
            errors += _field_ref(_d(field_ref), f"{i_path}.fieldRef", VOLUME_FIELD_PATHS)
        elif resource_ref is not None:
            errors += _resource_field_ref(_d(resource_ref), f"{i_path}.resourceFieldRef",
                                          volume=True)
        else:
            errors.append(FieldError.required(i_path, "one of fieldRef and resourceFieldRef "
                                              "is required"))
    return errors


def _validate_file_volume(volume: dict[str, Any], path: str) -> list[FieldError]:
    """configMap, secret, downwardAPI and projected sources: names, items, paths, modes."""
    errors: list[FieldError] = []
    seen: dict[str, str] = {}
    if volume.get("configMap") is not None:
        source, s_path = _d(volume["configMap"]), f"{path}.configMap"
        errors += _object_name(source.get("name"), f"{s_path}.name")
        errors += _key_to_paths(source, s_path, seen)
    if volume.get("secret") is not None:
        source, s_path = _d(volume["secret"]), f"{path}.secret"
        errors += _object_name(source.get("secretName"), f"{s_path}.secretName")
        errors += _key_to_paths(source, s_path, seen)
    if volume.get("downwardAPI") is not None:
        source, s_path = _d(volume["downwardAPI"]), f"{path}.downwardAPI"
        errors += _downward_items(source, s_path, seen)
    if volume.get("projected") is not None:
        source, s_path = _d(volume["projected"]), f"{path}.projected"
        for i, projection in enumerate(_l(source.get("sources"))):
            p_path = f"{s_path}.sources[{i}]"
            projection = _d(projection)
            kinds = [k for k in ("secret", "downwardAPI", "configMap", "serviceAccountToken",
                                 "clusterTrustBundle", "podCertificate")
                     if projection.get(k) is not None]
            if not kinds:
                errors.append(FieldError.required(p_path, "must specify exactly 1 volume type"))
            elif len(kinds) > 1:
                errors.append(FieldError.forbidden(f"{p_path}.{kinds[1]}", "may not specify "
                                                   "more than 1 volume type per source"))
            for kind in ("configMap", "secret"):
                if projection.get(kind) is not None:
                    errors += _object_name(_d(projection[kind]).get("name"),
                                           f"{p_path}.{kind}.name")
                    errors += _key_to_paths(_d(projection[kind]), f"{p_path}.{kind}", seen)
            if projection.get("downwardAPI") is not None:
                errors += _downward_items(_d(projection["downwardAPI"]),
                                          f"{p_path}.downwardAPI", seen)
    for source_name in schema.PROJECTED_SOURCES:
        errors += _file_mode(_d(volume.get(source_name)).get("defaultMode"),
                             f"{path}.{source_name}.defaultMode")
    return errors


def _validate_container(container: dict[str, Any], path: str,
                        volume_names: set[str], file_volumes: frozenset[Any] = frozenset()
                        ) -> list[FieldError]:
    errors: list[FieldError] = []
    errors += _name_errors(f"{path}.name", container.get("name"), names.dns1123_label)
    if not _l(container.get("command")):
        errors.append(FieldError.required(
            f"{path}.command", "tinykube runs processes, not images: give the command to run"))
    port_names: set[str] = set()
    for i, port in enumerate(_l(container.get("ports"))):
        port_name = _d(port).get("name")
        if isinstance(port_name, str):
            errors += _name_errors(f"{path}.ports[{i}].name", port_name, names.port_name)
            if port_name in port_names:
                errors.append(FieldError.duplicate(f"{path}.ports[{i}].name", port_name))
            port_names.add(port_name)
    errors += _validate_env(_l(container.get("env")), f"{path}.env")
    errors += _validate_env_from(_l(container.get("envFrom")), f"{path}.envFrom")
    mount_paths: set[str] = set()
    for i, mount in enumerate(_l(container.get("volumeMounts"))):
        m_path = f"{path}.volumeMounts[{i}]"
        mount = _d(mount)
        name, mount_path = mount.get("name"), mount.get("mountPath")
        if isinstance(name, str) and name not in volume_names:
            errors.append(FieldError(f"{m_path}.name", f"Not found: {json.dumps(name)}"))
        errors += _sub_path(mount.get("subPath"), f"{m_path}.subPath",
                            name in file_volumes or name not in volume_names)
        if isinstance(mount_path, str) and mount_path.startswith("/") \
                and "\0" not in mount_path:
            normal = posixpath.normpath(mount_path).replace("//", "/")
            problem = _mount_path_problem(normal)
            if problem:
                errors.append(FieldError.invalid(f"{m_path}.mountPath", mount_path, problem))
            elif normal in mount_paths:
                errors.append(FieldError.invalid(f"{m_path}.mountPath", mount_path,
                                                 "must be unique"))
            mount_paths.add(normal)
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_name)
        if isinstance(probe, dict):
            errors += _validate_probe(probe, f"{path}.{probe_name}", port_names,
                                      single_success=probe_name != "readinessProbe")
    errors += _validate_resources(_d(container.get("resources")), f"{path}.resources")
    return errors


# The kernel's own file systems: a volume over them would hide what the container (and its
# monitor) need from them, and a mount on / would replace the whole view of the host.
_RESERVED_MOUNT_PATHS = ("/proc", "/sys")


def _sub_path(value: Any, path: str, allowed: bool) -> list[FieldError]:
    """validateLocalDescendingPath; tinykube takes a subPath only into volumes it writes
    itself: a container could swap a path component of its own volume for a symlink."""
    if not isinstance(value, str) or not value:
        return []
    if not allowed:
        return [FieldError.forbidden(path, "not supported by tinykube for this volume (only "
                                     "into configMap, secret, downwardAPI and projected "
                                     "volumes; mount the whole volume)")]
    if value.startswith("/"):
        return [FieldError.invalid(path, value, "must be a relative path")]
    if ".." in value.split("/"):
        return [FieldError.invalid(path, value, "must not contain '..'")]
    return []


def _mount_path_problem(normal: str) -> str | None:
    if normal == "/":
        return "must not be the root directory"
    for reserved in _RESERVED_MOUNT_PATHS:
        if normal == reserved or normal.startswith(reserved + "/"):
            return f"must not be {reserved} or below it (the kernel's own file system)"
    return None


def _validate_env(env: list[Any], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, var in enumerate(env):
        e_path = f"{path}[{i}]"
        var = _d(var)
        errors += _name_errors(f"{e_path}.name", var.get("name"), names.env_var_name)
        value_from = var.get("valueFrom")
        if value_from is None:
            continue
        v_path = f"{e_path}.valueFrom"
        if var.get("value"):
            errors.append(FieldError.invalid(
                v_path, "", "may not be specified when `value` is not empty"))
        value_from = _d(value_from)
        sources = [k for k, v in value_from.items() if v is not None]
        if not sources:
            errors.append(FieldError.required(v_path, "must specify one of: `fieldRef`, "
                                              "`resourceFieldRef`, `configMapKeyRef` or "
                                              "`secretKeyRef`"))
        elif len(sources) > 1:
            errors.append(FieldError.invalid(v_path, "", "may not have more than one field "
                                             "specified at a time"))
        if value_from.get("fieldRef") is not None:
            errors += _field_ref(_d(value_from["fieldRef"]), f"{v_path}.fieldRef",
                                 ENV_FIELD_PATHS)
        if value_from.get("resourceFieldRef") is not None:
            errors += _resource_field_ref(_d(value_from["resourceFieldRef"]),
                                          f"{v_path}.resourceFieldRef", volume=False)
        for ref in ("configMapKeyRef", "secretKeyRef"):
            if value_from.get(ref) is not None:
                errors += _key_ref(_d(value_from[ref]), f"{v_path}.{ref}")
    return errors


def _key_ref(ref: dict[str, Any], path: str) -> list[FieldError]:
    errors = _object_name(ref.get("name"), f"{path}.name")
    key = ref.get("key")
    if key in (None, ""):
        errors.append(FieldError.required(f"{path}.key"))
    elif isinstance(key, str) and configdata.key_errors(key):
        errors.append(FieldError.invalid(f"{path}.key", key,
                                         "; ".join(configdata.key_errors(key))))
    return errors


def _validate_env_from(env_from: list[Any], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, source in enumerate(env_from):
        s_path = f"{path}[{i}]"
        source = _d(source)
        prefix = source.get("prefix")
        if isinstance(prefix, str) and prefix:
            errors += _name_errors(f"{s_path}.prefix", prefix, names.env_var_name)
        refs = [k for k in ("configMapRef", "secretRef") if source.get(k) is not None]
        if not refs:
            errors.append(FieldError.required(s_path, "must specify one of: `configMapRef` or "
                                              "`secretRef`"))
        elif len(refs) > 1:
            errors.append(FieldError.invalid(s_path, "", "may not have more than one field "
                                             "specified at a time"))
        for ref in refs:
            errors += _object_name(_d(source[ref]).get("name"), f"{s_path}.{ref}.name")
    return errors


def _field_ref(ref: dict[str, Any], path: str, allowed: tuple[str, ...]) -> list[FieldError]:
    """validateObjectFieldSelector: a supported path, `metadata.labels['k']` with a valid
    key, apiVersion v1."""
    errors: list[FieldError] = []
    api_version = ref.get("apiVersion")
    if api_version not in (None, "", "v1"):
        errors.append(FieldError.invalid(f"{path}.apiVersion", api_version,
                                         "unsupported version (only \"v1\")"))
    field_path = ref.get("fieldPath")
    if not isinstance(field_path, str):
        return errors
    if not field_path:
        return errors + [FieldError.required(f"{path}.fieldPath")]
    subscript = _SUBSCRIPT.fullmatch(field_path)
    if subscript:
        key = subscript.group(2)
        messages = names.qualified_name(key)
        if messages:
            errors.append(FieldError.invalid(f"{path}.fieldPath", field_path,
                                             "; ".join(messages)))
    elif field_path not in allowed:
        errors.append(FieldError.unsupported(f"{path}.fieldPath", field_path, list(allowed)))
    return errors


def _resource_field_ref(ref: dict[str, Any], path: str, *, volume: bool) -> list[FieldError]:
    """validateContainerResourceFieldSelector: resource, divisor, and (in a volume, where
    no container is implied) containerName."""
    errors: list[FieldError] = []
    if volume and not ref.get("containerName"):
        errors.append(FieldError.required(f"{path}.containerName"))
    resource = ref.get("resource")
    if not isinstance(resource, str):
        return errors
    if not resource:
        return errors + [FieldError.required(f"{path}.resource")]
    if resource not in RESOURCE_FIELDS:
        return errors + [FieldError.unsupported(f"{path}.resource", resource,
                                                list(RESOURCE_FIELDS))]
    divisor = ref.get("divisor")
    if divisor in (None, "", 0, "0"):
        return errors
    cpu = resource.endswith(".cpu")
    try:
        if cpu:
            ok = any(quantity.cpu_millis(divisor) == quantity.cpu_millis(d) for d in CPU_DIVISORS)
        else:
            ok = any(quantity.memory_bytes(divisor) == quantity.memory_bytes(d)
                     for d in MEMORY_DIVISORS)
    except quantity.QuantityError:
        ok = False
    if not ok:
        allowed = "1m and 1" if cpu else ", ".join(MEMORY_DIVISORS)
        name = "cpu" if cpu else "memory"
        errors.append(FieldError.invalid(f"{path}.divisor", divisor, f"only divisor's values "
                                         f"{allowed} are supported with the {name} resource"))
    return errors


def _validate_probe(probe: dict[str, Any], path: str, port_names: set[str], *,
                    single_success: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    handlers = [h for h in ("exec", "tcpSocket", "httpGet") if probe.get(h) is not None]
    if not handlers:
        errors.append(FieldError.required(path, "must specify a handler type"))
    elif len(handlers) > 1:
        errors.append(FieldError.forbidden(f"{path}.{handlers[1]}",
                                           "may not specify more than 1 handler type"))
    for handler in ("tcpSocket", "httpGet"):
        port = _d(probe.get(handler)).get("port")
        if isinstance(port, str):
            if names.port_name(port):
                errors.append(FieldError.invalid(f"{path}.{handler}.port", port,
                                                 "; ".join(names.port_name(port))))
            elif port not in port_names:
                errors.append(FieldError.invalid(
                    f"{path}.{handler}.port", port,
                    "must be a port number or the name of one of the container's ports"))
    if _d(probe.get("httpGet")).get("scheme") == "HTTPS":
        errors.append(FieldError.forbidden(f"{path}.httpGet.scheme",
                                           "HTTPS is not supported by tinykube (use HTTP)"))
    http_path = _d(probe.get("httpGet")).get("path")
    if isinstance(http_path, str) and http_path and not http_path.startswith("/"):
        errors.append(FieldError.invalid(f"{path}.httpGet.path", http_path,
                                         "must start with '/'"))
    threshold = probe.get("successThreshold")
    if single_success and isinstance(threshold, int) and threshold != 1:
        errors.append(FieldError.invalid(f"{path}.successThreshold", threshold, "must be 1"))
    return errors


def _validate_resources(resources: dict[str, Any], path: str) -> list[FieldError]:
    limits, requests = _d(resources.get("limits")), _d(resources.get("requests"))
    parse = {"cpu": quantity.cpu_millis, "memory": quantity.memory_bytes}
    errors: list[FieldError] = []
    for name, to_number in parse.items():
        if name in limits and name in requests:
            try:
                if to_number(requests[name]) > to_number(limits[name]):
                    errors.append(FieldError.invalid(
                        f"{path}.requests[{name}]", requests[name],
                        f"must be less than or equal to {name} limit of {limits[name]}"))
            except quantity.QuantityError:
                pass  # already reported by the schema pass
    pids = limits.get(schema.PIDS_RESOURCE)
    if pids is not None:
        try:
            if quantity.whole_number(pids) < 1:
                errors.append(FieldError.invalid(f"{path}.limits[{schema.PIDS_RESOURCE}]", pids,
                                                 "must be at least 1"))
        except quantity.QuantityError:
            pass
    return errors


# --- controllers ---------------------------------------------------------------------------

def _validate_controller(kind: str, spec: dict[str, Any], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    template = _d(spec.get("template"))
    template_labels = _d(_d(template.get("metadata")).get("labels"))
    t_path = f"{path}.template"
    errors += label_selectors.validate_labels(template_labels or None,
                                              f"{t_path}.metadata.labels")
    meta = _d(template.get("metadata"))
    errors += _validate_annotations(meta.get("annotations"), f"{t_path}.metadata.annotations")
    claim_names: tuple[str, ...] = ()
    if kind == "StatefulSet":
        claim_errors, claim_names = _validate_claim_templates(
            _l(spec.get("volumeClaimTemplates")), f"{path}.volumeClaimTemplates")
        errors += claim_errors
    if template.get("spec") is not None:
        errors += validate_pod_spec(_d(template.get("spec")), f"{t_path}.spec", in_template=True,
                                    claim_templates=claim_names)
    errors += _validate_selector(kind, spec, path, template_labels)
    if kind == "Deployment":
        errors += _validate_deployment(spec, path)
    elif kind == "StatefulSet":
        errors += _validate_statefulset(spec, path)
    return errors


def _validate_selector(kind: str, spec: dict[str, Any], path: str,
                       template_labels: dict[str, Any]) -> list[FieldError]:
    selector = spec.get("selector")
    s_path = f"{path}.selector"
    l_path = f"{path}.template.metadata.labels"
    mismatch = FieldError.invalid(l_path, template_labels,
                                  "`selector` does not match template `labels`")
    if kind == "ReplicationController":
        selector = _d(selector) or template_labels  # defaults to the template's labels
        if not selector:
            return [FieldError.required(s_path)]
        errors = label_selectors.validate_labels(spec.get("selector"), s_path)
        if not errors and not label_selectors.from_map(selector).matches(template_labels):
            errors.append(mismatch)
        return errors
    if selector is None:
        return [FieldError.required(s_path)]
    errors = label_selectors.validate_label_selector(selector, s_path)
    if errors:
        return errors
    parsed = label_selectors.from_label_selector(selector)
    if parsed.empty:
        return [FieldError.invalid(s_path, selector,
                                   f"empty selector is invalid for {kind.lower()}")]
    if not parsed.matches({k: v for k, v in template_labels.items() if isinstance(v, str)}):
        return [mismatch]
    return []


def _int_or_percent(value: Any, path: str, *, max_percent: int | None = None
                    ) -> tuple[list[FieldError], bool]:
    """Check an IntOrString like `25%` or `1`; returns (errors, is_zero)."""
    if value is None:
        return [], False
    if isinstance(value, str):
        if not _PERCENT.fullmatch(value):
            return [FieldError.invalid(path, value, "a valid percent string must be a numeric "
                                       "string followed by an ending '%' (e.g. '1%',  or "
                                       "'93%', regex used for validation is '[0-9]+%')")], False
        number = int(value[:-1])
        if max_percent is not None and number > max_percent:
            return [FieldError.invalid(path, value, f"must not be greater than {max_percent}%")
                    ], False
        return [], number == 0
    return [], value == 0


def _validate_deployment(spec: dict[str, Any], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    strategy = _d(spec.get("strategy"))
    rolling = strategy.get("rollingUpdate")
    st_path = f"{path}.strategy"
    if strategy.get("type") == "Recreate":
        if rolling is not None:
            errors.append(FieldError.forbidden(
                f"{st_path}.rollingUpdate",
                "may not be specified when strategy `type` is 'Recreate'"))
    else:
        rolling = _d(rolling)
        surge_errors, surge_zero = _int_or_percent(rolling.get("maxSurge"),
                                                   f"{st_path}.rollingUpdate.maxSurge")
        unavail_errors, unavail_zero = _int_or_percent(
            rolling.get("maxUnavailable"), f"{st_path}.rollingUpdate.maxUnavailable",
            max_percent=100)
        errors += surge_errors + unavail_errors
        # Defaults are 25%/25%, so "both zero" needs both given.
        if not surge_errors and not unavail_errors and surge_zero and unavail_zero:
            errors.append(FieldError.invalid(f"{st_path}.rollingUpdate.maxUnavailable",
                                             rolling.get("maxUnavailable"),
                                             "may not be 0 when `maxSurge` is 0"))
    min_ready = spec.get("minReadySeconds")
    deadline = spec.get("progressDeadlineSeconds")
    deadline = 600 if deadline is None else deadline  # the default, as if already applied
    min_ready = min_ready if isinstance(min_ready, int) else 0
    if isinstance(deadline, int) and not isinstance(deadline, bool) and deadline <= min_ready:
        errors.append(FieldError.invalid(f"{path}.progressDeadlineSeconds", deadline,
                                         "must be greater than minReadySeconds"))
    return errors


def _validate_statefulset(spec: dict[str, Any], path: str) -> list[FieldError]:
    errors = _name_errors(f"{path}.serviceName", spec.get("serviceName") or None,
                          names.dns1123_label)
    strategy = _d(spec.get("updateStrategy"))
    if strategy.get("type") == "OnDelete" and strategy.get("rollingUpdate") is not None:
        errors.append(FieldError.invalid(f"{path}.updateStrategy.rollingUpdate",
                                         strategy["rollingUpdate"],
                                         "only allowed for updateStrategy 'RollingUpdate'"))
    return errors


def _validate_claim_templates(templates: list[Any], path: str
                              ) -> tuple[list[FieldError], tuple[str, ...]]:
    errors: list[FieldError] = []
    seen: list[str] = []
    for i, claim in enumerate(templates):
        c_path = f"{path}[{i}]"
        claim = _d(claim)
        name = _d(claim.get("metadata")).get("name")
        if not name:
            errors.append(FieldError.required(f"{c_path}.metadata.name"))
        elif isinstance(name, str):
            errors += _name_errors(f"{c_path}.metadata.name", name, names.dns1123_label)
            if name in seen:
                errors.append(FieldError.duplicate(f"{c_path}.metadata.name", name))
            seen.append(name)
        errors += label_selectors.validate_labels(_d(claim.get("metadata")).get("labels"),
                                                  f"{c_path}.metadata.labels")
        errors += _validate_pvc_spec(_d(claim.get("spec")), f"{c_path}.spec")
    return errors, tuple(seen)


def _validate_pvc_spec(spec: dict[str, Any], path: str) -> list[FieldError]:
    requests = _d(_d(spec.get("resources")).get("requests"))
    if requests.get("storage") is None:
        return [FieldError.required(f"{path}.resources.requests[storage]")]
    try:
        if quantity.memory_bytes(requests["storage"]) <= 0:
            return [FieldError.invalid(f"{path}.resources.requests[storage]",
                                       requests["storage"], "must be greater than zero")]
    except quantity.QuantityError:
        pass  # reported by the schema pass
    return []


# --- services ------------------------------------------------------------------------------

NODE_PORT_RANGE = (30000, 32767)  # the API server's default --service-node-port-range


def validate_service_spec(spec: dict[str, Any], path: str) -> list[FieldError]:
    """ValidateService: ports (names, uniqueness, targetPort), clusterIP form, NodePort rules,
    affinity. Whether a requested clusterIP is free and inside the service CIDR is the
    allocator's check (it knows the CIDR and the other services)."""
    errors: list[FieldError] = []
    service_type = spec.get("type") or "ClusterIP"
    cluster_ip = spec.get("clusterIP")
    headless = cluster_ip == "None"
    ports = _l(spec.get("ports"))
    if not ports and not headless:
        errors.append(FieldError.required(f"{path}.ports"))
    names_seen: set[str] = set()
    keys_seen: set[tuple[Any, Any]] = set()
    node_ports_seen: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        p_path = f"{path}.ports[{i}]"
        port = _d(port)
        name = port.get("name")
        if len(ports) > 1 and not name:
            errors.append(FieldError.required(f"{p_path}.name"))
        elif isinstance(name, str) and name:
            errors += _name_errors(f"{p_path}.name", name, names.dns1123_label)
            if name in names_seen:
                errors.append(FieldError.duplicate(f"{p_path}.name", name))
            names_seen.add(name)
        key = (port.get("port"), port.get("protocol") or "TCP")
        if key in keys_seen:
            errors.append(FieldError.duplicate(p_path, {"port": key[0], "protocol": key[1]}))
        keys_seen.add(key)
        target = port.get("targetPort")
        if isinstance(target, str):
            errors += _name_errors(f"{p_path}.targetPort", target, names.port_name)
        node_port = port.get("nodePort")
        if node_port:
            if service_type != "NodePort":
                errors.append(FieldError.forbidden(
                    f"{p_path}.nodePort", "may not be used when `type` is 'ClusterIP'"))
            elif not NODE_PORT_RANGE[0] <= node_port <= NODE_PORT_RANGE[1]:
                errors.append(FieldError.invalid(
                    f"{p_path}.nodePort", node_port,
                    f"provided port is not in the valid range. The range of valid ports is "
                    f"{NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}"))
            elif (node_port, key[1]) in node_ports_seen:
                errors.append(FieldError.duplicate(f"{p_path}.nodePort", node_port))
            node_ports_seen.add((node_port, key[1]))
    if isinstance(cluster_ip, str) and cluster_ip not in ("", "None"):
        errors += _ipv4_errors(f"{path}.clusterIP", cluster_ip)
    cluster_ips = _l(spec.get("clusterIPs"))
    if cluster_ips and cluster_ip not in (None, "") and cluster_ips[0] != cluster_ip:
        errors.append(FieldError.invalid(f"{path}.clusterIPs[0]", cluster_ips[0],
                                         "must match `clusterIP` when both are specified"))
    if headless and service_type == "NodePort":
        errors.append(FieldError.invalid(f"{path}.clusterIP", cluster_ip,
                                         "may not be set to 'None' for NodePort services"))
    if headless and spec.get("sessionAffinity") not in (None, "None"):
        errors.append(FieldError.invalid(f"{path}.sessionAffinity", spec.get("sessionAffinity"),
                                         "must be None when .spec.clusterIP is None"))
    if spec.get("sessionAffinity") != "ClientIP" and _d(spec.get("sessionAffinityConfig")):
        errors.append(FieldError.invalid(
            f"{path}.sessionAffinityConfig", spec.get("sessionAffinityConfig"),
            "must not be set when session affinity is None"))
    errors += label_selectors.validate_labels(spec.get("selector"), f"{path}.selector")
    return errors


def _ipv4_errors(path: str, value: str) -> list[FieldError]:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return [FieldError.invalid(path, value, "must be a valid IP address, (e.g. 10.9.8.7) "
                                                "or 'None'")]
    return []


def _validate_service_update(old: dict[str, Any], new: dict[str, Any]) -> list[FieldError]:
    """The API server carries an unset clusterIP over from the stored object before this
    check, so only a real change is refused (Kubernetes: immutable once allocated)."""
    old_ip, new_ip = old.get("clusterIP"), new.get("clusterIP")
    if old_ip and new_ip != old_ip:
        return [FieldError.invalid("spec.clusterIP", new_ip, "field is immutable")]
    return []


def _validate_node_spec(spec: dict[str, Any], path: str) -> list[FieldError]:
    errors = []
    cidrs = [(f"{path}.podCIDR", spec.get("podCIDR"))] + [
        (f"{path}.podCIDRs[{i}]", c) for i, c in enumerate(spec.get("podCIDRs") or [])]
    for where, cidr in cidrs:
        if not cidr:
            continue
        try:
            ipaddress.IPv4Network(cidr)
        except ValueError as e:
            errors.append(FieldError.invalid(where, cidr, f"must be an IPv4 CIDR ({e})"))
    return errors


def _validate_endpoint_slice(obj: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    if obj.get("addressType") == "IPv4":
        for i, endpoint in enumerate(_l(obj.get("endpoints"))):
            for j, address in enumerate(_l(_d(endpoint).get("addresses"))):
                if isinstance(address, str):
                    errors += _ipv4_errors(f"endpoints[{i}].addresses[{j}]", address)
    for i, port in enumerate(_l(obj.get("ports"))):
        name = _d(port).get("name")
        if isinstance(name, str) and name:
            errors += _name_errors(f"ports[{i}].name", name, names.dns1123_label)
    return errors
