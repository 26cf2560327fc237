"""The shape of every user-facing kind, declared once, checked by one small walker.

A schema node knows the JSON type it expects and simple per-value rules (ranges, enums,
quantities). `check(schema, value, path)` walks an object along its schema and reports:

- *structural* problems: unknown fields, wrong JSON types. Kubernetes rejects these while
  decoding, before validating; we do the same (`validation.validate` reports only these when
  there are any, so the semantic checks can trust the types).
- *value* problems: out of range, not in an enum, bad quantity.

The walk follows the schema, not the data, so its depth is bounded by the schema; free-form
fields (`status`, annotations) are bounded by `check_document_limits`, which runs first.

Fields tinykube accepts but ignores (so realistic manifests load) are `IGNORED` in the
schemas below; fields whose absence of support would silently change what a workload does
(init containers, lifecycle hooks, secrets, host networking, ...) are `UNSUPPORTED` and
rejected with a clear message. The complete list is `ignored_fields()`; the README points
users at it.

tinykube extension: the pids limit of a container is the resource `tinykube.io/pids`
(`resources.limits["tinykube.io/pids"]: 100`), a whole number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tinykube.model import quantity, security
from tinykube.model.errors import FieldError

PIDS_RESOURCE = "tinykube.io/pids"
MAX_REPLICAS = 100_000
MAX_DEPTH = 48
MAX_NODES = 100_000
MAX_BYTES = 3 * 1024 * 1024  # Kubernetes' request body limit


class Limits(Exception):
    """The document is too deep or too big to look at."""


def check_document_limits(obj: Any) -> list[FieldError]:
    """Bound depth, node count and size, iteratively (safe for recursive YAML aliases)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    nodes = size = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            return [FieldError("", f"Invalid value: the object is nested more than {MAX_DEPTH} "
                                   "levels deep")]
        if nodes > MAX_NODES:
            return [FieldError("", f"Invalid value: the object has more than {MAX_NODES} "
                                   "values")]
        if isinstance(value, dict):
            for k, v in value.items():
                size += len(k) if isinstance(k, str) else 8
                stack.append((v, depth + 1))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, str):
            size += len(value)
        else:
            size += 8
        if size > MAX_BYTES:
            return [FieldError("", f"Invalid value: the object is larger than {MAX_BYTES} bytes")]
    return []


@dataclass
class Report:
    structural: list[FieldError] = field(default_factory=list)
    values: list[FieldError] = field(default_factory=list)


# --- schema nodes --------------------------------------------------------------------------

class Node:
    """One expected value. `check` appends problems to `report`."""

    type_name = "a value"

    def check(self, value: Any, path: str, report: Report) -> None:
        raise NotImplementedError


class AnyValue(Node):
    """Free-form (e.g. `status`): accepted as is, bounded by `check_document_limits`."""

    def check(self, value: Any, path: str, report: Report) -> None:
        return


IGNORED = AnyValue()  # accepted, not used by tinykube


class Unsupported(Node):
    """A real Kubernetes field that tinykube cannot honour: say so instead of ignoring it."""

    def __init__(self, why: str = "") -> None:
        self.why = why

    def check(self, value: Any, path: str, report: Report) -> None:
        if value is None:
            return
        detail = "not supported by tinykube" + (f" ({self.why})" if self.why else "")
        report.values.append(FieldError.forbidden(path, detail))


UNSUPPORTED = Unsupported()


def _type_error(report: Report, path: str, value: Any, expected: str) -> None:
    report.structural.append(FieldError.invalid(path, value, f"must be {expected}"))


class Str(Node):
    type_name = "a string"

    def __init__(self, enum: tuple[str, ...] | None = None, *, absolute_path: bool = False,
                 non_empty: bool = False, process_text: bool = False) -> None:
        self.enum = enum
        self.absolute_path = absolute_path
        self.non_empty = non_empty
        # argv and environment strings are C strings: a NUL cannot reach the process.
        self.process_text = process_text

    def check(self, value: Any, path: str, report: Report) -> None:
        if not isinstance(value, str):
            _type_error(report, path, value, self.type_name)
            return
        if self.enum is not None and value not in self.enum:
            report.values.append(FieldError.unsupported(path, value, list(self.enum)))
        elif self.non_empty and not value:
            report.values.append(FieldError.required(path))
        elif self.absolute_path:
            report.values.extend(check_path(value, path))
        elif self.process_text and "\0" in value:
            report.values.append(FieldError.invalid(
                path, value, "must not contain NUL bytes (argv and environment strings are "
                "C strings)"))


def check_path(value: str, path: str) -> list[FieldError]:
    """Absolute file system paths: no `..` segments, no NUL."""
    if not value:
        return [FieldError.required(path)]
    if "\0" in value:
        return [FieldError.invalid(path, value, "must not contain NUL")]
    if not value.startswith("/"):
        return [FieldError.invalid(path, value, "must be an absolute path")]
    if ".." in value.split("/"):
        return [FieldError.invalid(path, value, "must not contain '..'")]
    return []


class Int(Node):
    type_name = "an integer"

    def __init__(self, minimum: int | None = None, maximum: int | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def check(self, value: Any, path: str, report: Report) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            _type_error(report, path, value, self.type_name)
            return
        if self.minimum is not None and value < self.minimum:
            report.values.append(FieldError.invalid(
                path, value, f"must be greater than or equal to {self.minimum}"))
        elif self.maximum is not None and value > self.maximum:
            report.values.append(FieldError.invalid(
                path, value, f"must be less than or equal to {self.maximum}"))


class Bool(Node):
    type_name = "a boolean"

    def check(self, value: Any, path: str, report: Report) -> None:
        if not isinstance(value, bool):
            _type_error(report, path, value, self.type_name)


class IntOrString(Node):
    """Ports (`8080` or `http`), maxSurge (`1` or `25%`)."""

    type_name = "an integer or a string"

    def __init__(self, minimum: int | None = None, maximum: int | None = None) -> None:
        self.int_node = Int(minimum, maximum)

    def check(self, value: Any, path: str, report: Report) -> None:
        if isinstance(value, str):
            return  # the caller's semantic check knows what the string means
        if isinstance(value, bool) or not isinstance(value, int):
            _type_error(report, path, value, self.type_name)
            return
        self.int_node.check(value, path, report)


QUANTITY_MAX = 2**63 - 1


class Quantity(Node):
    """`cpu` (millicores), `memory`/storage (bytes) or `count` (whole number)."""

    type_name = "a quantity"

    def __init__(self, unit: str) -> None:
        self.parse = {"cpu": quantity.cpu_millis, "memory": quantity.memory_bytes,
                      "count": quantity.whole_number}[unit]
        self.suffix = "m" if unit == "cpu" else ""
        self.unit_name = {"cpu": "millicores", "memory": "bytes", "count": "units"}[unit]

    def check(self, value: Any, path: str, report: Report) -> None:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            _type_error(report, path, value, "a quantity (a string or a number)")
            return
        try:
            amount = self.parse(value)
        except quantity.QuantityError as err:
            report.values.append(FieldError.invalid(path, value, str(err)))
            return
        if amount > QUANTITY_MAX:
            # Kubernetes keeps quantities as int64 of the base unit; beyond that no cgroup
            # file can hold it either.
            report.values.append(FieldError.invalid(
                path, value, f"must be at most {QUANTITY_MAX}{self.suffix} "
                f"(2^63-1 {self.unit_name})"))


class ListOf(Node):
    type_name = "a list"

    def __init__(self, item: Node, *, min_items: int = 0, max_items: int = 10_000,
                 merge_key: str | None = None, patch_strategy: str | None = None) -> None:
        self.item = item
        self.min_items = min_items
        self.max_items = max_items
        # Kubernetes' strategic-merge-patch metadata (patchMergeKey/patchStrategy): how a
        # patch merges this list instead of replacing it. Published in OpenAPI too.
        self.merge_key = merge_key
        self.patch_strategy = patch_strategy or ("merge" if merge_key else None)

    def check(self, value: Any, path: str, report: Report) -> None:
        if not isinstance(value, list):
            _type_error(report, path, value, self.type_name)
            return
        if len(value) < self.min_items:
            report.values.append(FieldError.required(
                path, f"must have at least {self.min_items} item" + "s" * (self.min_items > 1)))
        if len(value) > self.max_items:
            report.values.append(FieldError.too_long(path, value, self.max_items))
            return
        for i, item in enumerate(value):
            self.item.check(item, f"{path}[{i}]", report)


class MapOf(Node):
    """String keys to `value` nodes (labels, annotations, resource lists)."""

    type_name = "an object"

    def __init__(self, value: Node, keys: tuple[str, ...] | None = None,
                 extra_keys_with_slash: bool = False) -> None:
        self.value = value
        self.keys = keys
        self.extra_keys_with_slash = extra_keys_with_slash

    def check(self, value: Any, path: str, report: Report) -> None:
        if not isinstance(value, dict):
            _type_error(report, path, value, self.type_name)
            return
        for key, item in value.items():
            if not isinstance(key, str):
                report.structural.append(FieldError.invalid(path, key, "keys must be strings"))
                continue
            if self.keys is not None and key not in self.keys:
                if self.extra_keys_with_slash and "/" in key:
                    continue  # extended resources (example.com/gpu): accepted, ignored
                report.values.append(FieldError.unsupported(f"{path}[{key}]", key,
                                                            list(self.keys)))
                continue
            self.value.check(item, f"{path}[{key}]", report)


class Obj(Node):
    """A JSON object with known fields; anything else is an unknown field."""

    type_name = "an object"

    def __init__(self, fields: dict[str, Node], required: tuple[str, ...] = ()) -> None:
        self.fields = fields
        self.required = required

    def check(self, value: Any, path: str, report: Report) -> None:
        if not isinstance(value, dict):
            _type_error(report, path or "<object>", value, self.type_name)
            return
        prefix = f"{path}." if path else ""
        for key, item in value.items():
            node = self.fields.get(key) if isinstance(key, str) else None
            if node is None:
                report.structural.append(FieldError.unknown_field(f"{prefix}{key}"))
            elif item is None and not isinstance(node, (AnyValue, Unsupported)):
                continue  # JSON null means "unset", as in Kubernetes
            else:
                node.check(item, f"{prefix}{key}", report)
        for key in self.required:
            if value.get(key) is None:
                report.values.append(FieldError.required(f"{prefix}{key}"))


def child(node: Node, key: str) -> Node:
    """The schema of `key` inside an object or map node (AnyValue where it says nothing)."""
    if isinstance(node, Obj):
        return node.fields.get(key, AnyValue())
    if isinstance(node, MapOf):
        return node.value
    return AnyValue()


def check(schema: Node, value: Any, path: str = "") -> Report:
    report = Report()
    schema.check(value, path, report)
    return report


# --- the kinds -----------------------------------------------------------------------------

STRING_MAP = MapOf(Str())
TIMESTAMP = AnyValue()  # strings written by tinykube itself, or null in dry-run output

OBJECT_META = Obj({
    "name": Str(), "generateName": Str(), "namespace": Str(),
    "labels": STRING_MAP, "annotations": STRING_MAP,
    "uid": Str(), "resourceVersion": Str(), "generation": Int(),
    "creationTimestamp": TIMESTAMP, "deletionTimestamp": TIMESTAMP,
    "deletionGracePeriodSeconds": Int(),
    "ownerReferences": ListOf(Obj({
        "apiVersion": Str(), "kind": Str(), "name": Str(), "uid": Str(),
        "controller": Bool(), "blockOwnerDeletion": Bool(),
    }, required=("apiVersion", "kind", "name", "uid")), merge_key="uid"),
    "finalizers": ListOf(Str(), patch_strategy="merge"),
    "managedFields": IGNORED, "selfLink": IGNORED,
})

TEMPLATE_META = Obj({
    "name": Str(), "generateName": Str(), "namespace": IGNORED,
    "labels": STRING_MAP, "annotations": STRING_MAP,
    "creationTimestamp": TIMESTAMP,
})

PORT = IntOrString(1, 65535)

_PROBE_COMMON = {
    "initialDelaySeconds": Int(0), "periodSeconds": Int(1), "timeoutSeconds": Int(1),
    "successThreshold": Int(1), "failureThreshold": Int(1),
    "terminationGracePeriodSeconds": IGNORED,
}
PROBE = Obj({
    **_PROBE_COMMON,
    "exec": Obj({"command": ListOf(Str(process_text=True), min_items=1)}, required=("command",)),
    "tcpSocket": Obj({"port": PORT, "host": Str()}, required=("port",)),
    "httpGet": Obj({
        "path": Str(), "port": PORT, "host": Str(), "scheme": Str(("HTTP", "HTTPS")),
        "httpHeaders": ListOf(Obj({"name": Str(non_empty=True), "value": Str()},
                                  required=("name", "value"))),
    }, required=("port",)),
    "grpc": Unsupported("use exec, tcpSocket or httpGet"),
})

# postStart/preStop (runtime/hooks.py runs them). tcpSocket is accepted as Kubernetes accepts
# it (deprecated, kept for old manifests); the kubelet cannot run it, so such a hook fails.
LIFECYCLE_HANDLER = Obj({
    "exec": PROBE.fields["exec"], "httpGet": PROBE.fields["httpGet"],
    "tcpSocket": PROBE.fields["tcpSocket"],
    "sleep": Obj({"seconds": Int()}, required=("seconds",)),
})
LIFECYCLE = Obj({
    "postStart": LIFECYCLE_HANDLER, "preStop": LIFECYCLE_HANDLER,
    "stopSignal": Unsupported("containers get SIGTERM"),
})

RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage", PIDS_RESOURCE)


class ResourceQuantity(Node):
    """A resource list value: parsed by the unit of its key."""

    def __init__(self) -> None:
        self.by_unit = {"cpu": Quantity("cpu"), "memory": Quantity("memory"),
                        "ephemeral-storage": Quantity("memory"),
                        PIDS_RESOURCE: Quantity("count")}

    def check(self, value: Any, path: str, report: Report) -> None:
        name = path[path.rfind("[") + 1:-1]
        self.by_unit.get(name, Quantity("memory")).check(value, path, report)


RESOURCE_LIST = MapOf(ResourceQuantity(), keys=RESOURCE_NAMES, extra_keys_with_slash=True)

# A key of a ConfigMap or Secret named by an env var (configMapKeyRef, secretKeyRef).
KEY_SELECTOR = Obj({"name": Str(), "key": Str(), "optional": Bool()}, required=("key",))
FIELD_REF = Obj({"fieldPath": Str(), "apiVersion": Str()}, required=("fieldPath",))
RESOURCE_FIELD_REF = Obj({"resource": Str(), "containerName": Str(), "divisor": AnyValue()},
                         required=("resource",))

ENV_VAR = Obj({
    "name": Str(non_empty=True), "value": Str(process_text=True),
    "valueFrom": Obj({
        "fieldRef": FIELD_REF, "resourceFieldRef": RESOURCE_FIELD_REF,
        "configMapKeyRef": KEY_SELECTOR, "secretKeyRef": KEY_SELECTOR,
        "fileKeyRef": UNSUPPORTED,
    }),
}, required=("name",))

ENV_FROM = Obj({
    "prefix": Str(process_text=True),
    "configMapRef": Obj({"name": Str(), "optional": Bool()}),
    "secretRef": Obj({"name": Str(), "optional": Bool()}),
})

SECCOMP_PROFILE = Obj({"type": Str(security.SECCOMP_TYPES), "localhostProfile": Str()},
                      required=("type",))
USER_ID = Int(0, 2**31 - 1)

CONTAINER_SECURITY_CONTEXT = Obj({
    "runAsUser": USER_ID, "runAsGroup": USER_ID, "runAsNonRoot": Bool(),
    "allowPrivilegeEscalation": Bool(), "privileged": Bool(), "readOnlyRootFilesystem": Bool(),
    "capabilities": Obj({"add": ListOf(Str(non_empty=True)),
                         "drop": ListOf(Str(non_empty=True))}),
    "seccompProfile": SECCOMP_PROFILE, "procMount": Str(security.PROC_MOUNT_TYPES),
    # No SELinux or AppArmor on a tinykube node: accepted, not enforced.
    "seLinuxOptions": IGNORED, "appArmorProfile": IGNORED, "windowsOptions": IGNORED,
})

CONTAINER = Obj({
    "name": Str(), "image": Str(), "command": ListOf(Str(process_text=True)),
    "args": ListOf(Str(process_text=True)),
    "workingDir": Str(absolute_path=True),
    "env": ListOf(ENV_VAR, merge_key="name"),
    "resources": Obj({"limits": RESOURCE_LIST, "requests": RESOURCE_LIST, "claims": IGNORED}),
    "volumeMounts": ListOf(Obj({
        "name": Str(), "mountPath": Str(absolute_path=True), "readOnly": Bool(),
        # subPath: only into the volumes tinykube writes itself (configMap, secret,
        # downwardAPI, projected); validation refuses it elsewhere.
        "subPath": Str(), "subPathExpr": UNSUPPORTED,
        "mountPropagation": UNSUPPORTED, "recursiveReadOnly": UNSUPPORTED,
    }, required=("name", "mountPath")), merge_key="mountPath"),
    "livenessProbe": PROBE, "readinessProbe": PROBE, "startupProbe": PROBE,
    "securityContext": CONTAINER_SECURITY_CONTEXT,
    "ports": ListOf(Obj({
        "containerPort": Int(1, 65535), "name": Str(), "protocol": Str(("TCP", "UDP", "SCTP")),
        "hostPort": IGNORED, "hostIP": IGNORED,
    }, required=("containerPort",)), merge_key="containerPort"),
    # Images do not exist in tinykube; these describe them and are ignored.
    "imagePullPolicy": Str(("Always", "IfNotPresent", "Never")),
    "terminationMessagePath": IGNORED, "terminationMessagePolicy": IGNORED,
    "stdin": IGNORED, "stdinOnce": IGNORED, "tty": IGNORED, "resizePolicy": IGNORED,
    "envFrom": ListOf(ENV_FROM),
    "lifecycle": LIFECYCLE,
    # Only on init containers (native sidecars); validation says so for app containers.
    "restartPolicy": Str(),
    "volumeDevices": UNSUPPORTED,
}, required=("name",))

# The volume sources tinykube runs: the one table validation ("one source per volume"), the
# runtime (runtime/volumes.py prepares each) and this schema read. Adding a source is adding
# it here and its preparation there (tests/unit/test_volumes.py checks both agree).
# configMap / secret / downwardAPI / projected volumes: files written from API objects.
FILE_MODE = Int()  # 0..0777, checked by validation with its own message
KEY_TO_PATH = Obj({"key": Str(), "path": Str(), "mode": FILE_MODE}, required=("key", "path"))
DOWNWARD_FILE = Obj({"path": Str(), "fieldRef": FIELD_REF,
                     "resourceFieldRef": RESOURCE_FIELD_REF, "mode": FILE_MODE},
                    required=("path",))
CONFIG_MAP_PROJECTION = Obj({"name": Str(), "items": ListOf(KEY_TO_PATH), "optional": Bool()})
SECRET_PROJECTION = Obj({"name": Str(), "items": ListOf(KEY_TO_PATH), "optional": Bool()})
DOWNWARD_API_PROJECTION = Obj({"items": ListOf(DOWNWARD_FILE)})
CONFIG_MAP_VOLUME = Obj({**CONFIG_MAP_PROJECTION.fields, "defaultMode": FILE_MODE})
SECRET_VOLUME = Obj({"secretName": Str(), "items": ListOf(KEY_TO_PATH), "optional": Bool(),
                     "defaultMode": FILE_MODE})
DOWNWARD_API_VOLUME = Obj({**DOWNWARD_API_PROJECTION.fields, "defaultMode": FILE_MODE})
PROJECTED_VOLUME = Obj({
    "defaultMode": FILE_MODE,
    "sources": ListOf(Obj({
        "configMap": CONFIG_MAP_PROJECTION, "secret": SECRET_PROJECTION,
        "downwardAPI": DOWNWARD_API_PROJECTION,
        "serviceAccountToken": Unsupported(
            "tinykube has no service accounts and issues no tokens"),
        "clusterTrustBundle": Unsupported("tinykube has no ClusterTrustBundles"),
        "podCertificate": UNSUPPORTED,
    })),
})

VOLUME_SOURCES: dict[str, Node] = {
    "emptyDir": Obj({"medium": Str(("", "Memory")), "sizeLimit": Quantity("memory")}),
    "hostPath": Obj({"path": Str(absolute_path=True), "type": Str((
        "", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice",
        "BlockDevice"))}, required=("path",)),
    "persistentVolumeClaim": Obj({"claimName": Str(), "readOnly": Bool()},
                                 required=("claimName",)),
    "configMap": CONFIG_MAP_VOLUME,
    "secret": SECRET_VOLUME,
    "downwardAPI": DOWNWARD_API_VOLUME,
    "projected": PROJECTED_VOLUME,
}
# The sources whose files tinykube writes from API objects (the kubelet's atomic writer):
# always mounted read-only, updated in place, the only ones a subPath may point into.
PROJECTED_SOURCES = ("configMap", "secret", "downwardAPI", "projected")


def _or(words: list[str]) -> str:
    return f"{', '.join(words[:-1])} or {words[-1]}" if len(words) > 1 else words[0]


def volume_sources(volume: dict[str, Any]) -> list[str]:
    """The VOLUME_SOURCES a volume sets, in table order (a valid volume sets exactly one)."""
    return [name for name in VOLUME_SOURCES if volume.get(name) is not None]


VOLUME = Obj({
    "name": Str(),
    **VOLUME_SOURCES,
    **{name: Unsupported("use " + _or(list(VOLUME_SOURCES))) for name in (
        "nfs", "csi", "ephemeral",
        "image", "iscsi", "gitRepo")},
}, required=("name",))

POD_SECURITY_CONTEXT = Obj({
    "runAsUser": USER_ID, "runAsGroup": USER_ID, "runAsNonRoot": Bool(),
    "fsGroup": USER_ID, "fsGroupChangePolicy": Str(("OnRootMismatch", "Always")),
    "supplementalGroups": ListOf(USER_ID), "supplementalGroupsPolicy": Str(("Merge", "Strict")),
    "seccompProfile": SECCOMP_PROFILE,
    "seLinuxOptions": IGNORED, "seLinuxChangePolicy": IGNORED, "appArmorProfile": IGNORED,
    "windowsOptions": IGNORED, "sysctls": UNSUPPORTED,
})

RESTART_POLICIES = ("Always", "OnFailure", "Never")

POD_SPEC = Obj({
    "containers": ListOf(CONTAINER, min_items=1, merge_key="name"),
    "restartPolicy": Str(RESTART_POLICIES),
    "terminationGracePeriodSeconds": Int(0),
    "hostname": Str(), "subdomain": Str(),
    "volumes": ListOf(VOLUME, merge_key="name", patch_strategy="merge,retainKeys"),
    "securityContext": POD_SECURITY_CONTEXT,
    # The scheduler (tinykube/cluster/scheduler.py) honours these two.
    "nodeSelector": STRING_MAP, "nodeName": Str(),
    # Affinity, service accounts and DNS settings are accepted and not acted on.
    "affinity": IGNORED, "tolerations": IGNORED,
    "topologySpreadConstraints": IGNORED, "schedulerName": IGNORED, "priority": IGNORED,
    "priorityClassName": IGNORED, "preemptionPolicy": IGNORED, "runtimeClassName": IGNORED,
    "serviceAccountName": IGNORED, "serviceAccount": IGNORED,
    "automountServiceAccountToken": IGNORED, "imagePullSecrets": IGNORED,
    "dnsPolicy": IGNORED, "dnsConfig": IGNORED, "enableServiceLinks": IGNORED,
    "setHostnameAsFQDN": IGNORED, "readinessGates": IGNORED, "overhead": IGNORED, "os": IGNORED,
    "initContainers": ListOf(CONTAINER, merge_key="name"),
    "ephemeralContainers": UNSUPPORTED,
    "activeDeadlineSeconds": UNSUPPORTED,
    "hostNetwork": Bool(), "hostPID": Bool(), "hostIPC": Bool(),
    "shareProcessNamespace": Bool(),
    "hostAliases": UNSUPPORTED, "hostUsers": UNSUPPORTED, "resourceClaims": UNSUPPORTED,
    "schedulingGates": UNSUPPORTED,
}, required=("containers",))

POD_TEMPLATE = Obj({"metadata": TEMPLATE_META, "spec": POD_SPEC}, required=("spec",))

REPLICAS = Int(0, MAX_REPLICAS)

LABEL_SELECTOR = Obj({
    "matchLabels": STRING_MAP,
    "matchExpressions": ListOf(Obj({
        "key": Str(), "operator": Str(), "values": ListOf(Str()),
    })),
})


def _top(kind_spec: Node) -> Obj:
    return Obj({"apiVersion": Str(), "kind": Str(), "metadata": OBJECT_META,
                "spec": kind_spec, "status": AnyValue()}, required=("metadata", "spec"))


ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")

PVC_SPEC = Obj({
    "accessModes": ListOf(Str(ACCESS_MODES), min_items=1),
    "resources": Obj({"requests": MapOf(Quantity("memory"), keys=("storage",)),
                      "limits": MapOf(Quantity("memory"), keys=("storage",))},
                     required=("requests",)),
    "storageClassName": IGNORED, "volumeMode": Str(("Filesystem",)),
    "volumeName": UNSUPPORTED, "selector": UNSUPPORTED, "dataSource": UNSUPPORTED,
    "dataSourceRef": UNSUPPORTED, "volumeAttributesClassName": IGNORED,
}, required=("accessModes", "resources"))

PVC_TEMPLATE = Obj({
    "apiVersion": Str(), "kind": Str(),
    "metadata": TEMPLATE_META, "spec": PVC_SPEC, "status": AnyValue(),
}, required=("metadata", "spec"))

# --- Service and EndpointSlice (discovery.k8s.io/v1) ---------------------------------------

SERVICE_TYPES = ("ClusterIP", "NodePort")
PROTOCOLS = ("TCP", "UDP", "SCTP")
SERVICE_PROTOCOLS = ("TCP", "UDP")  # what the nftables proxy programs

SERVICE_PORT = Obj({
    "name": Str(), "protocol": Str(SERVICE_PROTOCOLS), "port": Int(1, 65535),
    "targetPort": PORT, "nodePort": Int(0, 65535), "appProtocol": Str(),
}, required=("port",))

SERVICE_SPEC = Obj({
    "type": Str(SERVICE_TYPES),
    "selector": STRING_MAP,
    "ports": ListOf(SERVICE_PORT, merge_key="port"),
    "clusterIP": Str(), "clusterIPs": ListOf(Str(), max_items=1),
    "ipFamilies": ListOf(Str(("IPv4",)), max_items=1),
    "ipFamilyPolicy": Str(("SingleStack", "PreferDualStack", "RequireDualStack")),
    "sessionAffinity": Str(("None", "ClientIP")),
    "sessionAffinityConfig": Obj({"clientIP": Obj({"timeoutSeconds": Int(1, 86400)})}),
    "publishNotReadyAddresses": Bool(),
    # One node: Cluster and Local pick from the same endpoints.
    "externalTrafficPolicy": Str(("Cluster", "Local")),
    "internalTrafficPolicy": Str(("Cluster", "Local")),
    "trafficDistribution": IGNORED, "healthCheckNodePort": IGNORED,
    "allocateLoadBalancerNodePorts": IGNORED, "loadBalancerClass": IGNORED,
    "loadBalancerSourceRanges": IGNORED,
    "externalName": Unsupported("ExternalName services are not supported"),
    "externalIPs": Unsupported("traffic never leaves the machine"),
    "loadBalancerIP": Unsupported("no load balancers on one node"),
})

ENDPOINT = Obj({
    "addresses": ListOf(Str(non_empty=True), min_items=1, max_items=100),
    "conditions": Obj({"ready": Bool(), "serving": Bool(), "terminating": Bool()}),
    "hostname": Str(), "nodeName": Str(), "zone": Str(),
    "targetRef": Obj({"kind": Str(), "namespace": Str(), "name": Str(), "uid": Str(),
                      "apiVersion": Str(), "resourceVersion": Str(), "fieldPath": Str()}),
    "hints": IGNORED, "deprecatedTopology": IGNORED,
}, required=("addresses",))

ENDPOINT_SLICE = Obj({
    "apiVersion": Str(), "kind": Str(), "metadata": OBJECT_META,
    "addressType": Str(("IPv4", "IPv6", "FQDN")),
    "endpoints": ListOf(ENDPOINT, max_items=1000),
    "ports": ListOf(Obj({"name": Str(), "protocol": Str(PROTOCOLS), "port": Int(1, 65535),
                         "appProtocol": Str()}), max_items=100),
}, required=("metadata", "addressType"))

# --- ConfigMap and Secret (v1): no spec, the content is top-level ---------------------------

CONFIG_MAP = Obj({
    "apiVersion": Str(), "kind": Str(), "metadata": OBJECT_META,
    "data": MapOf(Str()), "binaryData": MapOf(Str()), "immutable": Bool(),
}, required=("metadata",))

class SecretValue(Str):
    """A Secret's value: a string, and an error never repeats what was sent."""

    def check(self, value: Any, path: str, report: Report) -> None:
        if not isinstance(value, str):
            report.structural.append(FieldError(path, "Invalid value: must be a string"))


SECRET = Obj({
    "apiVersion": Str(), "kind": Str(), "metadata": OBJECT_META,
    "data": MapOf(SecretValue()), "stringData": MapOf(SecretValue()), "type": Str(),
    "immutable": Bool(),
}, required=("metadata",))

# What an update or an apply replaces, for kinds without a spec.
CONTENT_FIELDS: dict[str, tuple[str, ...]] = {
    "ConfigMap": ("data", "binaryData", "immutable"),
    "Secret": ("data", "stringData", "type", "immutable"),
}

# --- Node (v1, cluster-scoped) and Lease (coordination.k8s.io/v1) ---------------------------

NODE_SPEC = Obj({
    "podCIDR": Str(), "podCIDRs": ListOf(Str(), max_items=1), "unschedulable": Bool(),
    "providerID": Str(), "taints": IGNORED, "configSource": IGNORED, "externalID": IGNORED,
})

LEASE_SPEC = Obj({
    "holderIdentity": Str(), "leaseDurationSeconds": Int(1, 2**31 - 1),
    "acquireTime": TIMESTAMP, "renewTime": TIMESTAMP, "leaseTransitions": Int(0, 2**31 - 1),
    "preferredHolder": Str(), "strategy": Str(),
})

_CONTROLLER_COMMON = {"replicas": REPLICAS, "minReadySeconds": Int(0, 2**31 - 1),
                      "template": POD_TEMPLATE}

SCHEMAS: dict[str, Obj] = {
    "Pod": _top(POD_SPEC),
    "ReplicationController": _top(Obj({**_CONTROLLER_COMMON, "selector": STRING_MAP},
                                      required=("template",))),
    "ReplicaSet": _top(Obj({**_CONTROLLER_COMMON, "selector": LABEL_SELECTOR},
                           required=("selector", "template"))),
    "Deployment": _top(Obj({
        **_CONTROLLER_COMMON, "selector": LABEL_SELECTOR,
        "strategy": Obj({
            "type": Str(("RollingUpdate", "Recreate")),
            "rollingUpdate": Obj({"maxSurge": IntOrString(0), "maxUnavailable": IntOrString(0)}),
        }),
        "revisionHistoryLimit": Int(0, 2**31 - 1),
        "progressDeadlineSeconds": Int(1, 2**31 - 1),
        "paused": Bool(),
    }, required=("selector", "template"))),
    "StatefulSet": _top(Obj({
        **_CONTROLLER_COMMON, "selector": LABEL_SELECTOR,
        "serviceName": Str(),
        "podManagementPolicy": Str(("OrderedReady", "Parallel")),
        "updateStrategy": Obj({
            "type": Str(("RollingUpdate", "OnDelete")),
            "rollingUpdate": Obj({"partition": Int(0, 2**31 - 1),
                                  "maxUnavailable": Unsupported("pods are updated one by one")}),
        }),
        "volumeClaimTemplates": ListOf(PVC_TEMPLATE),
        "persistentVolumeClaimRetentionPolicy": Obj({
            "whenDeleted": Str(("Retain", "Delete")), "whenScaled": Str(("Retain", "Delete")),
        }),
        "revisionHistoryLimit": Int(0, 2**31 - 1),
        "ordinals": Unsupported("ordinals start at 0"),
    }, required=("selector", "template"))),
    "PersistentVolumeClaim": _top(PVC_SPEC),
    "Service": _top(SERVICE_SPEC),
    "EndpointSlice": ENDPOINT_SLICE,
    "ConfigMap": CONFIG_MAP,
    "Secret": SECRET,

    "Node": Obj({"apiVersion": Str(), "kind": Str(), "metadata": OBJECT_META,
                 "spec": NODE_SPEC, "status": AnyValue()}, required=("metadata",)),
    "Lease": _top(LEASE_SPEC),
}


def ignored_fields() -> dict[str, list[str]]:
    """Where in which schema tinykube accepts a field without acting on it (for docs)."""
    found: dict[str, list[str]] = {}

    def walk(node: Node, path: str, seen: set[int]) -> None:
        if id(node) in seen:
            return
        seen = seen | {id(node)}
        if isinstance(node, Obj):
            for name, child in node.fields.items():
                if child is IGNORED:
                    found.setdefault(path or "<top>", []).append(name)
                else:
                    walk(child, f"{path}.{name}" if path else name, seen)
        elif isinstance(node, ListOf):
            walk(node.item, path + "[]", seen)

    for kind, schema in SCHEMAS.items():
        walk(schema, kind, set())
    return found


# --- status (the /status subresource) ------------------------------------------------------
# Status is written by tinykube itself and, through `/status`, by users and tools. A status
# write is checked like a spec write (types, enums, unknown fields), so a stored status can
# always be read back by the CLI and the controllers.

CONDITION_STATUS = ("True", "False", "Unknown")
POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
COUNT = Int(0, 2**31 - 1)
TEXT = Str()

CONDITION = Obj({
    "type": Str(non_empty=True), "status": Str(CONDITION_STATUS),
    "lastProbeTime": TIMESTAMP, "lastTransitionTime": TIMESTAMP, "lastUpdateTime": TIMESTAMP,
    "reason": TEXT, "message": TEXT, "observedGeneration": Int(0),
}, required=("type", "status"))
CONDITIONS = ListOf(CONDITION)

CONTAINER_STATE = Obj({
    "waiting": Obj({"reason": TEXT, "message": TEXT}),
    "running": Obj({"startedAt": TIMESTAMP}),
    "terminated": Obj({
        "exitCode": Int(), "signal": Int(), "reason": TEXT, "message": TEXT,
        "startedAt": TIMESTAMP, "finishedAt": TIMESTAMP, "containerID": TEXT,
    }),
})

CONTAINER_STATUS = Obj({
    "name": Str(non_empty=True), "state": CONTAINER_STATE, "lastState": CONTAINER_STATE,
    "ready": Bool(), "started": Bool(), "restartCount": COUNT,
    "image": TEXT, "imageID": TEXT, "containerID": TEXT,
    "allocatedResources": IGNORED, "resources": IGNORED, "volumeMounts": IGNORED,
    "user": IGNORED, "allocatedResourcesStatus": IGNORED, "stopSignal": IGNORED,
}, required=("name",))

IP_LIST = ListOf(Obj({"ip": TEXT}))

POD_STATUS = Obj({
    "phase": Str(POD_PHASES), "conditions": CONDITIONS, "message": TEXT, "reason": TEXT,
    "hostIP": TEXT, "hostIPs": IP_LIST, "podIP": TEXT, "podIPs": IP_LIST,
    "startTime": TIMESTAMP, "qosClass": Str(("Guaranteed", "Burstable", "BestEffort")),
    "containerStatuses": ListOf(CONTAINER_STATUS),
    "initContainerStatuses": ListOf(CONTAINER_STATUS),
    "ephemeralContainerStatuses": ListOf(CONTAINER_STATUS),
    "nominatedNodeName": TEXT, "observedGeneration": Int(0), "resize": IGNORED,
    "resourceClaimStatuses": IGNORED, "hostname": IGNORED,
})

_REPLICA_COUNTS = {"replicas": COUNT, "readyReplicas": COUNT, "availableReplicas": COUNT,
                   "observedGeneration": Int(0), "conditions": CONDITIONS}

NODE_RESOURCES = MapOf(Quantity("memory"), extra_keys_with_slash=True)

NODE_STATUS = Obj({
    "capacity": NODE_RESOURCES, "allocatable": NODE_RESOURCES,
    "conditions": ListOf(Obj({
        "type": Str(non_empty=True), "status": Str(CONDITION_STATUS),
        "lastHeartbeatTime": TIMESTAMP, "lastTransitionTime": TIMESTAMP,
        "reason": TEXT, "message": TEXT,
    }, required=("type", "status"))),
    "addresses": ListOf(Obj({"type": Str(non_empty=True), "address": Str(non_empty=True)},
                            required=("type", "address"))),
    "nodeInfo": AnyValue(), "phase": IGNORED, "daemonEndpoints": IGNORED, "images": IGNORED,
    "volumesInUse": IGNORED, "volumesAttached": IGNORED, "config": IGNORED,
    "runtimeHandlers": IGNORED, "features": IGNORED,
})

STATUS_SCHEMAS: dict[str, Obj] = {
    "Pod": POD_STATUS,
    "Node": NODE_STATUS,
    "ReplicationController": Obj({**_REPLICA_COUNTS, "fullyLabeledReplicas": COUNT}),
    "ReplicaSet": Obj({**_REPLICA_COUNTS, "fullyLabeledReplicas": COUNT,
                       "terminatingReplicas": COUNT}),
    "Deployment": Obj({**_REPLICA_COUNTS, "updatedReplicas": COUNT,
                       "unavailableReplicas": COUNT, "terminatingReplicas": COUNT,
                       "collisionCount": COUNT}),
    "StatefulSet": Obj({**_REPLICA_COUNTS, "currentReplicas": COUNT, "updatedReplicas": COUNT,
                        "currentRevision": TEXT, "updateRevision": TEXT,
                        "collisionCount": COUNT}),
    "Service": Obj({"loadBalancer": IGNORED, "conditions": CONDITIONS}),
    "PersistentVolumeClaim": Obj({
        "phase": Str(("Pending", "Bound", "Lost")),
        "accessModes": ListOf(Str(ACCESS_MODES)),
        "capacity": MapOf(Quantity("memory"), keys=("storage",)),
        "conditions": CONDITIONS, "allocatedResources": IGNORED,
        "allocatedResourceStatuses": IGNORED, "currentVolumeAttributesClassName": IGNORED,
        "modifyVolumeStatus": IGNORED,
    }),
}


def check_status(kind: str, status: Any) -> Report:
    """Problems with `status` of a `kind` object (`status` itself may be absent: null)."""
    report = Report()
    node = STATUS_SCHEMAS.get(kind)
    if node is not None and status is not None:
        node.check(status, "status", report)
    return report
