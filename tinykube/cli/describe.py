"""`describe`: kubectl's own layout for every kind (kubectl/pkg/describe/describe.go).

kubectl writes a description through Go's text/tabwriter (min width 0, padding 2, pad ' '):
each line holds tab-terminated cells, and a column is as wide as its widest cell in the run
of consecutive lines that have that column. `TabWriter` reproduces that algorithm, so the
describers below are written the way kubectl's are (`w.write(level, "Name:\\t...\\n")`) and
their output lines up character for character with kubectl's.

A describer is `fn(obj, related) -> str`, registered per kind with `@describer("Kind")`;
`related` fetches what a description shows besides the object (its events, a controller's
pods, a Deployment's ReplicaSets, a Service's EndpointSlices). Kinds without a describer of
their own get kubectl's generic one (every field, labelled the way kubectl labels them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from tinykube import labels as label_selectors
from tinykube.cli import printing
from tinykube.model import configdata, quantity
from tinykube.model.meta import parse_time

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"  # never shown, as kubectl
MAX_ANNOTATION_LEN = 140


# ---- the tab writer -----------------------------------------------------------------------


class TabWriter:
    """Go's text/tabwriter as kubectl configures it, plus kubectl's PrefixWriter levels
    (two spaces a level). `flush()` ends every column block, as kubectl's DescribeEvents
    does before the events table."""

    def __init__(self) -> None:
        self._done: list[str] = []
        self._pending = ""

    def write(self, level: int, text: str) -> None:
        self._pending += "  " * level + text

    def flush(self) -> None:
        if self._pending:
            self._done.append(_align(self._pending))
            self._pending = ""

    def text(self) -> str:
        self.flush()
        return "".join(self._done)


def _align(text: str) -> str:
    ends_with_newline = text.endswith("\n")
    rows = [line.split("\t") for line in (text[:-1] if ends_with_newline else text).split("\n")]
    widths: list[int] = []
    out: list[str] = []

    def emit(first: int, last: int) -> None:
        for row in rows[first:last]:
            out.append("".join(cell.ljust(widths[j]) if j < len(widths) else cell
                               for j, cell in enumerate(row)))

    def block(first: int, last: int) -> None:
        # A column block: consecutive rows having a (tab-terminated) cell in this column.
        column = len(widths)
        this = first
        while this < last:
            if column >= len(rows[this]) - 1:
                this += 1
                continue
            emit(first, this)
            first = this
            width = 0
            while this < last and column < len(rows[this]) - 1:
                width = max(width, len(rows[this][column]) + 2)
                this += 1
            widths.append(width)
            block(first, this)
            widths.pop()
            first = this
        emit(first, last)

    block(0, len(rows))
    return "\n".join(out) + ("\n" if ends_with_newline else "")


# ---- what a description needs besides the object ------------------------------------------


class Related(Protocol):
    def events(self, obj: dict) -> list[dict]: ...

    def list(self, kind: str, namespace: str | None, selector: str | None = None
             ) -> list[dict]: ...


Describer = Callable[[dict, Related], str]
DESCRIBERS: dict[str, Describer] = {}


def describer(kind: str) -> Callable[[Describer], Describer]:
    def register(fn: Describer) -> Describer:
        DESCRIBERS[kind] = fn
        return fn
    return register


def describe(obj: dict, related: Related) -> str:
    """The description kubectl prints for `obj` (ends with a newline)."""
    return DESCRIBERS.get(obj["kind"], describe_generic)(obj, related)


# ---- shared pieces ------------------------------------------------------------------------


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def rfc1123z(timestamp: str | None) -> str:
    """Go's time.RFC1123Z in local time, as kubectl prints it."""
    seconds = parse_time(timestamp) if timestamp else None
    if seconds is None:
        return "Mon, 01 Jan 0001 00:00:00 +0000"  # Go's zero time
    return datetime.fromtimestamp(seconds, UTC).astimezone().strftime("%a, %d %b %Y %H:%M:%S %z")


def since(timestamp: str | None, now: datetime | None = None) -> str:
    return printing.age(timestamp, now) if timestamp else "<unknown>"


def _go_list(values: list | None) -> str:
    """Go's %v of a string slice: `[a b]`."""
    return "[" + " ".join(str(v) for v in values or []) + "]"


def _go_value(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "<nil>"
    if isinstance(value, list):
        return _go_list(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_value(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def format_labels(mapping: dict | None) -> str:
    """labels.FormatLabels: `k=v,k2=v2`, `<none>` when empty."""
    return ",".join(f"{k}={v}" for k, v in sorted((mapping or {}).items())) or "<none>"


def format_label_selector(selector: dict | None) -> str:
    """metav1.FormatLabelSelector: the selector's canonical string, `<none>` when empty."""
    try:
        text = str(label_selectors.from_label_selector(selector))
    except ValueError:
        return "<error>"
    return text or "<none>"


def print_labels(w: TabWriter, title: str, mapping: dict | None, indent: str = "") -> None:
    w.write(0, f"{indent}{title}:\t")
    if not mapping:
        w.write(0, "<none>\n")
        return
    for i, key in enumerate(sorted(mapping)):
        if i:
            w.write(0, f"{indent}\t")
        w.write(0, f"{key}={mapping[key]}\n")


def print_annotations(w: TabWriter, title: str, annotations: dict | None) -> None:
    w.write(0, f"{title}:\t")
    keys = sorted(k for k in annotations or {} if k != LAST_APPLIED)
    if not keys:
        w.write(0, "<none>\n")
        return
    for i, key in enumerate(keys):
        if i:
            w.write(0, "\t")
        value = str(annotations[key]).removesuffix("\n")  # type: ignore[index]
        if len(value) + len(key) + 2 > MAX_ANNOTATION_LEN or "\n" in value:
            w.write(0, f"{key}:\n")
            for line in value.split("\n"):
                short = line if len(line) <= MAX_ANNOTATION_LEN - 2 else \
                    line[:MAX_ANNOTATION_LEN - 2] + "..."
                w.write(0, f"\t  {short}\n")
        else:
            w.write(0, f"{key}: {value}\n")


def controlled_by(obj: dict) -> str:
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return f"{ref.get('kind')}/{ref.get('name')}"
    return ""


def describe_events(w: TabWriter, events: list[dict], now: datetime | None = None) -> None:
    if not events:
        w.write(0, "Events:\t<none>\n")
        return
    w.flush()
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    w.write(1, "----\t------\t----\t----\t-------\n")
    for e in sorted(events, key=lambda e: parse_time(e.get("lastTimestamp") or "") or 0.0):
        first = since(e.get("eventTime") or e.get("firstTimestamp"), now)
        count = int(e.get("count") or 1)
        series = e.get("series") or {}
        if series:
            interval = (f"{since(series.get('lastObservedTime'), now)} "
                        f"(x{series.get('count')} over {first})")
        elif count > 1:
            interval = f"{since(e.get('lastTimestamp'), now)} (x{count} over {first})"
        else:
            interval = first
        source = (e.get("source") or {}).get("component") or e.get("reportingComponent") or ""
        message = str(e.get("message") or "").strip()
        field_path = (e.get("involvedObject") or {}).get("fieldPath")
        if field_path:
            message = f"{field_path}: {message}"
        w.write(1, f"{e.get('type', '')}\t{e.get('reason', '')}\t{interval}\t{source}\t"
                   f"{message}\n")


def events_of(obj: dict, related: Related) -> list[dict]:
    """The events about `obj` (found by its uid; an object without one, such as an Event
    itself, has none)."""
    return related.events(obj) if _meta(obj).get("uid") else []


def _pods_status(pods: list[dict], owner_uid: str) -> str:
    counts = {"Running": 0, "Pending": 0, "Succeeded": 0, "Failed": 0}
    for pod in pods:
        refs = [r for r in _meta(pod).get("ownerReferences") or [] if r.get("controller")]
        if not refs or refs[0].get("uid") != owner_uid:
            continue  # orphans and pods of other controllers do not count, as in kubectl
        phase = (pod.get("status") or {}).get("phase")
        if phase in counts:
            counts[phase] += 1
    return (f"{counts['Running']} Running / {counts['Pending']} Waiting / "
            f"{counts['Succeeded']} Succeeded / {counts['Failed']} Failed")


def _controller_pods(obj: dict, related: Related, selector: str) -> list[dict]:
    return related.list("Pod", _meta(obj).get("namespace", "default"), selector or None)


# ---- containers, volumes, pod templates ---------------------------------------------------


def describe_probe(probe: dict) -> str:
    attrs = (f"delay={probe.get('initialDelaySeconds', 0)}s "
             f"timeout={probe.get('timeoutSeconds', 1)}s "
             f"period={probe.get('periodSeconds', 10)}s "
             f"#success={probe.get('successThreshold', 1)} "
             f"#failure={probe.get('failureThreshold', 3)}")
    if "exec" in probe:
        return f"exec {_go_list((probe['exec'] or {}).get('command'))} {attrs}"
    if "httpGet" in probe:
        get = probe["httpGet"] or {}
        scheme = str(get.get("scheme") or "HTTP").lower()
        port = get.get("port")
        host = get.get("host") or ""
        where = f"{host}:{port}" if port not in (None, "") else host
        return f"http-get {scheme}://{where}{get.get('path') or ''} {attrs}"
    if "tcpSocket" in probe:
        tcp = probe["tcpSocket"] or {}
        return f"tcp-socket {tcp.get('host') or ''}:{tcp.get('port')} {attrs}"
    if "grpc" in probe:
        grpc = probe["grpc"] or {}
        return f"grpc <pod>:{grpc.get('port')} {grpc.get('service') or ''} {attrs}"
    return f"unknown {attrs}"


def _ports(ports: list[dict], field: str) -> str:
    shown = []
    for p in ports:
        text = f"{p.get(field, 0)}/{p.get('protocol') or 'TCP'}"
        shown.append(f"{text} ({p['name']})" if p.get("name") else text)
    return ", ".join(shown)


def _status_lines(w: TabWriter, title: str, state: dict) -> None:
    if "running" in state:
        w.write(2, f"{title}:\tRunning\n")
        w.write(3, f"Started:\t{rfc1123z((state['running'] or {}).get('startedAt'))}\n")
    elif "terminated" in state:
        term = state["terminated"] or {}
        w.write(2, f"{title}:\tTerminated\n")
        if term.get("reason"):
            w.write(3, f"Reason:\t{term['reason']}\n")
        if term.get("message"):
            w.write(3, f"Message:\t{term['message']}\n")
        w.write(3, f"Exit Code:\t{term.get('exitCode', 0)}\n")
        if (term.get("signal") or 0) > 0:
            w.write(3, f"Signal:\t{term['signal']}\n")
        w.write(3, f"Started:\t{rfc1123z(term.get('startedAt'))}\n")
        w.write(3, f"Finished:\t{rfc1123z(term.get('finishedAt'))}\n")
    else:
        w.write(2, f"{title}:\tWaiting\n")
        reason = (state.get("waiting") or {}).get("reason")
        if reason:
            w.write(3, f"Reason:\t{reason}\n")


def _resources(w: TabWriter, resources: dict | None, level: int) -> None:
    for section in ("limits", "requests"):
        values = (resources or {}).get(section) or {}
        if values:
            w.write(level, f"{section.capitalize()}:\n")
        for name in sorted(values):
            w.write(level + 1, f"{name}:\t{values[name]}\n")


FIELD_VALUES: dict[str, Callable[[dict], Any]] = {
    "metadata.name": lambda p: _meta(p).get("name"),
    "metadata.namespace": lambda p: _meta(p).get("namespace"),
    "metadata.uid": lambda p: _meta(p).get("uid"),
    "spec.nodeName": lambda p: (p.get("spec") or {}).get("nodeName"),
    "spec.serviceAccountName": lambda p: (p.get("spec") or {}).get("serviceAccountName"),
    "status.podIP": lambda p: (p.get("status") or {}).get("podIP"),
    "status.hostIP": lambda p: (p.get("status") or {}).get("hostIP"),
}


def _field_value(pod: dict | None, path: str) -> str:
    if pod is None:
        return ""
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((_meta(pod).get(match.group(1)) or {}).get(match.group(2), ""))
    getter = FIELD_VALUES.get(path)
    value = getter(pod) if getter else None
    return "" if value is None else str(value)


def _resource_value(container: dict, ref: dict) -> str:
    resource = ref.get("resource", "")
    section, _, name = resource.partition(".")
    amount = ((container.get("resources") or {}).get(section) or {}).get(name)
    if amount is None:
        value = "0"
    else:
        try:
            divisor = quantity.parse_quantity(ref.get("divisor") or 1) or 1
            value = str(math.ceil(quantity.parse_quantity(amount) / divisor))
        except ValueError:
            value = ""
    if value == "0" and resource in ("limits.cpu", "limits.memory"):
        return "node allocatable"
    return value


def _environment(w: TabWriter, container: dict, pod: dict | None) -> None:
    env_from = container.get("envFrom") or []
    if env_from:
        w.write(2, "Environment Variables from:\n")
        for source in env_from:
            kind, ref = ("ConfigMap", source.get("configMapRef")) if source.get("configMapRef") \
                else ("Secret", source.get("secretRef") or {})
            ref = ref or {}
            optional = "true" if ref.get("optional") else "false"
            where = f"{kind} with prefix '{source['prefix']}'" if source.get("prefix") else kind
            w.write(3, f"{ref.get('name', '')}\t{where}\tOptional: {optional}\n")
    env = container.get("env") or []
    w.write(2, "Environment:" + ("" if env else "\t<none>") + "\n")
    for var in env:
        name, source = var.get("name", ""), var.get("valueFrom")
        if not source:
            for i, line in enumerate(str(var.get("value", "")).split("\n")):
                w.write(3, f"{name}:\t{line}\n" if i == 0 else f"\t{line}\n")
        elif source.get("fieldRef"):
            ref = source["fieldRef"]
            w.write(3, f"{name}:\t{_field_value(pod, ref.get('fieldPath', ''))} "
                       f"({ref.get('apiVersion', 'v1')}:{ref.get('fieldPath', '')})\n")
        elif source.get("resourceFieldRef"):
            ref = source["resourceFieldRef"]
            w.write(3, f"{name}:\t{_resource_value(container, ref)} ({ref.get('resource')})\n")
        elif source.get("secretKeyRef"):
            ref = source["secretKeyRef"]
            w.write(3, f"{name}:\t<set to the key '{ref.get('key')}' in secret "
                       f"'{ref.get('name')}'>\tOptional: {_bool(ref.get('optional'))}\n")
        elif source.get("configMapKeyRef"):
            ref = source["configMapKeyRef"]
            w.write(3, f"{name}:\t<set to the key '{ref.get('key')}' of config map "
                       f"'{ref.get('name')}'>\tOptional: {_bool(ref.get('optional'))}\n")


def _bool(value: Any) -> str:
    return "true" if value else "false"


def _mounts(w: TabWriter, container: dict) -> None:
    mounts = container.get("volumeMounts") or []
    w.write(2, "Mounts:" + ("" if mounts else "\t<none>") + "\n")
    for mount in sorted(mounts, key=lambda m: m.get("mountPath", "")):
        flags = ["ro" if mount.get("readOnly") else "rw"]
        if mount.get("subPath"):
            flags.append(f'path="{mount["subPath"]}"')
        w.write(3, f"{mount.get('mountPath')} from {mount.get('name')} ({','.join(flags)})\n")


def describe_containers(w: TabWriter, label: str, containers: list[dict],
                        statuses: list[dict] | None, pod: dict | None, space: str = "") -> None:
    by_name = {s.get("name"): s for s in statuses or []}
    w.write(0, f"{space}{label}:" + ("" if containers else " <none>") + "\n")
    indent = " " if space else ""
    for container in containers:
        status = by_name.get(container.get("name"))
        w.write(1, f"{indent}{container.get('name')}:\n")
        if status is not None:
            w.write(2, f"Container ID:\t{status.get('containerID', '')}\n")
        w.write(2, f"Image:\t{container.get('image', '')}\n")
        if status is not None:
            w.write(2, f"Image ID:\t{status.get('imageID', '')}\n")
        ports = container.get("ports") or []
        shown = _ports(ports, "containerPort")
        w.write(2, f"Ports:\t{shown}\n" if "," in shown else f"Port:\t{shown or '<none>'}\n")
        shown = _ports(ports, "hostPort")
        w.write(2, f"Host Ports:\t{shown}\n" if "," in shown
                else f"Host Port:\t{shown or '<none>'}\n")
        for field, title in (("command", "Command"), ("args", "Args")):
            if container.get(field):
                w.write(2, f"{title}:\n")
                for item in container[field]:
                    for line in str(item).split("\n"):
                        w.write(3, f"{line}\n")
        if status is not None:
            _status_lines(w, "State", status.get("state") or {})
            if (status.get("lastState") or {}).get("terminated"):
                _status_lines(w, "Last State", status["lastState"])
            w.write(2, f"Ready:\t{'True' if status.get('ready') else 'False'}\n")
            w.write(2, f"Restart Count:\t{status.get('restartCount', 0)}\n")
        _resources(w, container.get("resources"), 2)
        for field, title in (("livenessProbe", "Liveness"), ("readinessProbe", "Readiness"),
                             ("startupProbe", "Startup")):
            if container.get(field):
                w.write(2, f"{title}:\t{describe_probe(container[field])}\n")
        _environment(w, container, pod)
        _mounts(w, container)


VOLUME_LINES: dict[str, Callable[[dict], str]] = {
    "hostPath": lambda v: ("Type:\tHostPath (bare host directory volume)\n"
                           f"    Path:\t{v.get('path', '')}\n"
                           f"    HostPathType:\t{v.get('type') or '<none>'}\n"),
    "emptyDir": lambda v: ("Type:\tEmptyDir (a temporary directory that shares a pod's "
                           "lifetime)\n"
                           f"    Medium:\t{v.get('medium', '')}\n"
                           f"    SizeLimit:\t{v.get('sizeLimit') or '<unset>'}\n"),
    "secret": lambda v: ("Type:\tSecret (a volume populated by a Secret)\n"
                         f"    SecretName:\t{v.get('secretName', '')}\n"
                         f"    Optional:\t{_bool(v.get('optional'))}\n"),
    "configMap": lambda v: ("Type:\tConfigMap (a volume populated by a ConfigMap)\n"
                            f"    Name:\t{v.get('name', '')}\n"
                            f"    Optional:\t{_bool(v.get('optional'))}\n"),
    "persistentVolumeClaim": lambda v: ("Type:\tPersistentVolumeClaim (a reference to a "
                                        "PersistentVolumeClaim in the same namespace)\n"
                                        f"    ClaimName:\t{v.get('claimName', '')}\n"
                                        f"    ReadOnly:\t{_bool(v.get('readOnly'))}\n"),
}


def _volume(w: TabWriter, volume: dict) -> None:
    for source, lines in VOLUME_LINES.items():
        if source in volume:
            w.write(2, lines(volume[source] or {}))
            return
    if "downwardAPI" in volume:
        w.write(2, "Type:\tDownwardAPI (a volume populated by information about the pod)\n"
                   "    Items:\n")
        for item in (volume["downwardAPI"] or {}).get("items") or []:
            if item.get("fieldRef"):
                w.write(3, f"{item['fieldRef'].get('fieldPath')} -> {item.get('path')}\n")
            if item.get("resourceFieldRef"):
                w.write(3, f"{item['resourceFieldRef'].get('resource')} -> {item.get('path')}\n")
        return
    if "projected" in volume:
        w.write(2, "Type:\tProjected (a volume that contains injected data from multiple "
                   "sources)\n")
        for source in (volume["projected"] or {}).get("sources") or []:
            if source.get("secret") is not None:
                w.write(2, f"SecretName:\t{source['secret'].get('name', '')}\n"
                           f"    Optional:\t{_bool(source['secret'].get('optional'))}\n")
            elif source.get("downwardAPI") is not None:
                w.write(2, "DownwardAPI:\ttrue\n")
            elif source.get("configMap") is not None:
                w.write(2, f"ConfigMapName:\t{source['configMap'].get('name', '')}\n"
                           f"    Optional:\t{_bool(source['configMap'].get('optional'))}\n")
            elif source.get("serviceAccountToken") is not None:
                seconds = source["serviceAccountToken"].get("expirationSeconds", 3607)
                w.write(2, f"TokenExpirationSeconds:\t{seconds}\n")
        return
    w.write(1, "<unknown>\n")


def describe_volumes(w: TabWriter, volumes: list[dict], space: str = "") -> None:
    if not volumes:
        w.write(0, f"{space}Volumes:\t<none>\n")
        return
    w.write(0, f"{space}Volumes:\n")
    for volume in volumes:
        w.write(1, f"{' ' if space else ''}{volume.get('name')}:\n")
        _volume(w, volume)


def _tolerations(w: TabWriter, title: str, tolerations: list[dict] | None) -> None:
    w.write(0, f"{title}:\t")
    if not tolerations:
        w.write(0, "<none>\n")
        return
    for i, t in enumerate(sorted(tolerations, key=lambda t: t.get("key", ""))):
        if i:
            w.write(0, "\t")
        text = t.get("key", "")
        if t.get("value"):
            text += f"={t['value']}"
        if t.get("effect"):
            text += f":{t['effect']}"
        if t.get("operator") == "Exists" and not t.get("value"):
            text += " op=Exists" if t.get("key") or t.get("effect") else "op=Exists"
        if t.get("tolerationSeconds") is not None:
            text += f" for {t['tolerationSeconds']}s"
        w.write(0, text + "\n")


def describe_pod_template(w: TabWriter, template: dict | None) -> None:
    w.write(0, "Pod Template:\n")
    if template is None:
        w.write(1, "<unset>")
        return
    meta, spec = template.get("metadata") or {}, template.get("spec") or {}
    print_labels(w, "  Labels", meta.get("labels"))
    if meta.get("annotations"):
        print_annotations(w, "  Annotations", meta["annotations"])
    if spec.get("serviceAccountName"):
        w.write(1, f"Service Account:\t{spec['serviceAccountName']}\n")
    if spec.get("initContainers"):
        describe_containers(w, "Init Containers", spec["initContainers"], None, None, "  ")
    describe_containers(w, "Containers", spec.get("containers") or [], None, None, "  ")
    describe_volumes(w, spec.get("volumes") or [], "  ")
    if spec.get("priorityClassName"):
        w.write(1, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    print_labels(w, "  Node-Selectors", spec.get("nodeSelector"))
    _tolerations(w, "  Tolerations", spec.get("tolerations"))


def qos_class(pod: dict) -> str:
    """Kubernetes' GetPodQOS over cpu and memory."""
    spec = pod.get("spec") or {}
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    requests: dict[str, bool] = {}
    guaranteed = True
    any_set = False
    for container in containers:
        resources = container.get("resources") or {}
        limits = {k: v for k, v in (resources.get("limits") or {}).items()
                  if k in ("cpu", "memory")}
        reqs = {k: v for k, v in (resources.get("requests") or {}).items()
                if k in ("cpu", "memory")}
        reqs = {**limits, **reqs}  # requests default to limits
        any_set = any_set or bool(limits) or bool(reqs)
        requests.update(dict.fromkeys(reqs, True))
        if set(limits) != {"cpu", "memory"} or any(str(reqs[k]) != str(limits[k])
                                                    for k in limits):
            guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


# ---- the kinds ----------------------------------------------------------------------------


@describer("Pod")
def describe_pod(pod: dict, related: Related) -> str:
    meta, spec, status = _meta(pod), pod.get("spec") or {}, pod.get("status") or {}
    w = TabWriter()
    w.write(0, f"Name:\t{meta.get('name')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', 'default')}\n")
    if spec.get("priority") is not None:
        w.write(0, f"Priority:\t{spec['priority']}\n")
    if spec.get("priorityClassName"):
        w.write(0, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    if spec.get("runtimeClassName"):
        w.write(0, f"Runtime Class Name:\t{spec['runtimeClassName']}\n")
    if spec.get("serviceAccountName"):
        w.write(0, f"Service Account:\t{spec['serviceAccountName']}\n")
    node = spec.get("nodeName")
    w.write(0, f"Node:\t{node}/{status.get('hostIP', '')}\n" if node else "Node:\t<none>\n")
    if status.get("startTime"):
        w.write(0, f"Start Time:\t{rfc1123z(status['startTime'])}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    phase = status.get("phase", "")
    if meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        w.write(0, f"Status:\tTerminating (lasts {since(meta['deletionTimestamp'])})\n")
        w.write(0, f"Termination Grace Period:\t{meta.get('deletionGracePeriodSeconds', 0)}s\n")
    else:
        w.write(0, f"Status:\t{phase}\n")
    if status.get("reason"):
        w.write(0, f"Reason:\t{status['reason']}\n")
    if status.get("message"):
        w.write(0, f"Message:\t{status['message']}\n")
    w.write(0, f"IP:\t{status.get('podIP', '')}\n")
    ips = status.get("podIPs") or []
    if ips:
        w.write(0, "IPs:\n")
        for ip in ips:
            w.write(1, f"IP:\t{ip.get('ip')}\n")
    else:
        w.write(0, "IPs:\t<none>\n")
    if controlled_by(pod):
        w.write(0, f"Controlled By:\t{controlled_by(pod)}\n")
    if spec.get("initContainers"):
        describe_containers(w, "Init Containers", spec["initContainers"],
                            status.get("initContainerStatuses"), pod)
    describe_containers(w, "Containers", spec.get("containers") or [],
                        status.get("containerStatuses"), pod)
    gates = spec.get("readinessGates") or []
    conditions = status.get("conditions") or []
    if gates:
        w.write(0, "Readiness Gates:\n  Type\tStatus\n")
        for gate in gates:
            found = next((str(c.get("status")) for c in conditions
                          if c.get("type") == gate.get("conditionType")), "<none>")
            w.write(1, f"{gate.get('conditionType')} \t{found} \n")
    if conditions:
        w.write(0, "Conditions:\n  Type\tStatus\n")
        for c in conditions:
            w.write(1, f"{c.get('type')} \t{c.get('status')} \n")
    describe_volumes(w, spec.get("volumes") or [])
    w.write(0, f"QoS Class:\t{qos_class(pod)}\n")
    print_labels(w, "Node-Selectors", spec.get("nodeSelector"))
    _tolerations(w, "Tolerations", spec.get("tolerations"))
    describe_events(w, events_of(pod, related))
    return w.text()


def _replica_owner(kind: str, obj: dict, related: Related, selector: str) -> str:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    w = TabWriter()
    w.write(0, f"Name:\t{meta.get('name')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', 'default')}\n")
    shown = format_label_selector(spec.get("selector")) if kind == "ReplicaSet" \
        else format_labels(spec.get("selector"))
    w.write(0, f"Selector:\t{shown}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    if kind == "ReplicaSet" and controlled_by(obj):
        w.write(0, f"Controlled By:\t{controlled_by(obj)}\n")
    w.write(0, f"Replicas:\t{status.get('replicas', 0)} current / "
               f"{spec.get('replicas', 1)} desired\n")
    pods = _controller_pods(obj, related, selector)
    w.write(0, f"Pods Status:\t{_pods_status(pods, meta.get('uid', ''))}\n")
    describe_pod_template(w, spec.get("template"))
    _conditions_table(w, status.get("conditions"))
    describe_events(w, events_of(obj, related))
    return w.text()


def _conditions_table(w: TabWriter, conditions: list[dict] | None) -> None:
    if conditions:
        w.write(0, "Conditions:\n  Type\tStatus\tReason\n")
        w.write(1, "----\t------\t------\n")
        for c in conditions:
            w.write(1, f"{c.get('type')} \t{c.get('status')}\t{c.get('reason', '')}\n")


def _selector_string(selector: dict | None) -> str:
    try:
        return str(label_selectors.from_label_selector(selector))
    except ValueError:
        return ""


@describer("ReplicaSet")
def describe_replicaset(rs: dict, related: Related) -> str:
    return _replica_owner("ReplicaSet", rs, related,
                          _selector_string((rs.get("spec") or {}).get("selector")))


@describer("ReplicationController")
def describe_replicationcontroller(rc: dict, related: Related) -> str:
    selector = (rc.get("spec") or {}).get("selector") or {}
    return _replica_owner("ReplicationController", rc, related,
                          ",".join(f"{k}={v}" for k, v in sorted(selector.items())))


def deployment_replicasets(d: dict, related: Related) -> tuple[list[dict], dict | None]:
    """(old, new): the ReplicaSets the Deployment controls; the new one has its template
    (ignoring the pod-template-hash label), the oldest such if several, as kubectl finds it."""
    from tinykube.controllers.deployment import util

    uid = _meta(d).get("uid")
    owned = [rs for rs in related.list("ReplicaSet", _meta(d).get("namespace", "default"))
             if any(r.get("controller") and r.get("uid") == uid
                    for r in _meta(rs).get("ownerReferences") or [])]
    template = (d.get("spec") or {}).get("template") or {}
    matching = sorted((rs for rs in owned
                       if util.equal_ignore_hash((rs.get("spec") or {}).get("template") or {},
                                                 template)),
                      key=lambda rs: (_meta(rs).get("creationTimestamp") or "",
                                      _meta(rs).get("name", "")))
    new = matching[0] if matching else None
    return [rs for rs in owned if rs is not new], new


def _replica_sets_line(rss: list[dict]) -> str:
    return ", ".join(f"{_meta(rs).get('name')} ({(rs.get('status') or {}).get('replicas', 0)}/"
                     f"{(rs.get('spec') or {}).get('replicas', 1)} replicas created)"
                     for rs in rss) or "<none>"


def _int_or_string(value: Any, default: str) -> str:
    return default if value is None else str(value)


@describer("Deployment")
def describe_deployment(d: dict, related: Related) -> str:
    meta, spec, status = _meta(d), d.get("spec") or {}, d.get("status") or {}
    w = TabWriter()
    w.write(0, f"Name:\t{meta.get('name')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', 'default')}\n")
    w.write(0, f"CreationTimestamp:\t{rfc1123z(meta.get('creationTimestamp'))}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Selector:\t{_selector_string(spec.get('selector'))}\n")
    w.write(0, f"Replicas:\t{spec.get('replicas', 1)} desired | "
               f"{status.get('updatedReplicas', 0)} updated | {status.get('replicas', 0)} total | "
               f"{status.get('availableReplicas', 0)} available | "
               f"{status.get('unavailableReplicas', 0)} unavailable\n")
    strategy = spec.get("strategy") or {}
    strategy_type = strategy.get("type") or "RollingUpdate"
    w.write(0, f"StrategyType:\t{strategy_type}\n")
    w.write(0, f"MinReadySeconds:\t{spec.get('minReadySeconds', 0)}\n")
    if strategy_type == "RollingUpdate":  # the API server defaults rollingUpdate for this type
        rolling = strategy.get("rollingUpdate") or {}
        w.write(0, f"RollingUpdateStrategy:\t"
                   f"{_int_or_string(rolling.get('maxUnavailable'), '25%')} max unavailable, "
                   f"{_int_or_string(rolling.get('maxSurge'), '25%')} max surge\n")
    describe_pod_template(w, spec.get("template"))
    _conditions_table(w, status.get("conditions"))
    old, new = deployment_replicasets(d, related)
    if old or new:
        w.write(0, f"OldReplicaSets:\t{_replica_sets_line(old)}\n")
        w.write(0, f"NewReplicaSet:\t{_replica_sets_line([new] if new else [])}\n")
    describe_events(w, events_of(d, related))
    return w.text()


@describer("StatefulSet")
def describe_statefulset(sts: dict, related: Related) -> str:
    meta, spec, status = _meta(sts), sts.get("spec") or {}, sts.get("status") or {}
    selector = _selector_string(spec.get("selector"))
    w = TabWriter()
    w.write(0, f"Name:\t{meta.get('name')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', 'default')}\n")
    w.write(0, f"CreationTimestamp:\t{rfc1123z(meta.get('creationTimestamp'))}\n")
    w.write(0, f"Selector:\t{selector}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    if spec.get("serviceName"):
        w.write(0, f"Service Name:\t{spec['serviceName']}\n")
    w.write(0, f"Pod Management Policy:\t{spec.get('podManagementPolicy') or 'OrderedReady'}\n")
    w.write(0, f"Replicas:\t{spec.get('replicas', 1)} desired | {status.get('replicas', 0)} "
               "total\n")
    update = spec.get("updateStrategy") or {}
    w.write(0, f"Update Strategy:\t{update.get('type') or 'RollingUpdate'}\n")
    rolling = update.get("rollingUpdate")
    if (update.get("type") or "RollingUpdate") == "RollingUpdate":
        rolling = {"partition": 0, **(rolling or {})}  # the API server's default
    if rolling and rolling.get("partition") is not None:
        w.write(1, f"Partition:\t{rolling['partition']}\n")
        if rolling.get("maxUnavailable") is not None:
            w.write(1, f"MaxUnavailable:\t{rolling['maxUnavailable']}\n")
    retention = {"whenDeleted": "Retain", "whenScaled": "Retain",
                 **(spec.get("persistentVolumeClaimRetentionPolicy") or {})}
    w.write(0, "Persistent Volume Claim Retention Policy:\n")
    w.write(1, f"WhenDeleted:\t{retention['whenDeleted']}\n")
    w.write(1, f"WhenScaled:\t{retention['whenScaled']}\n")
    pods = _controller_pods(sts, related, selector)
    w.write(0, f"Pods Status:\t{_pods_status(pods, meta.get('uid', ''))}\n")
    describe_pod_template(w, spec.get("template"))
    templates = spec.get("volumeClaimTemplates") or []
    if not templates:
        w.write(0, "Volume Claims:\t<none>\n")
    else:
        w.write(0, "Volume Claims:\n")
        for pvc in templates:
            pvc_meta, pvc_spec = pvc.get("metadata") or {}, pvc.get("spec") or {}
            w.write(1, f"Name:\t{pvc_meta.get('name')}\n")
            w.write(1, f"StorageClass:\t{pvc_spec.get('storageClassName', '')}\n")
            print_labels(w, "Labels", pvc_meta.get("labels"), indent="  ")
            print_labels(w, "Annotations", pvc_meta.get("annotations"), indent="  ")
            storage = ((pvc_spec.get("resources") or {}).get("requests") or {}).get("storage")
            w.write(1, f"Capacity:\t{storage if storage is not None else '<default>'}\n")
            w.write(1, f"Access Modes:\t{_go_list(pvc_spec.get('accessModes'))}\n")
    describe_events(w, events_of(sts, related))
    return w.text()


def _endpoints(slices: list[dict], port_name: str) -> str:
    """kubectl's formatEndpointSlices for one Service port: ready `ip:port`s, three shown."""
    if not slices:
        return "<none>"
    shown: list[str] = []
    count, more = 0, False
    for endpoint_slice in slices:
        ports = endpoint_slice.get("ports") or []
        endpoints = endpoint_slice.get("endpoints") or []
        numbers = [None] if not ports else \
            [p.get("port") for p in ports if (p.get("name") or "") == port_name]
        for number in numbers:
            for endpoint in endpoints:
                if len(shown) == 3:
                    more = True
                if (endpoint.get("conditions") or {}).get("ready") is False:
                    continue
                address = (endpoint.get("addresses") or [""])[0]
                if not more:
                    shown.append(address if number is None else f"{address}:{number}")
                count += 1
    text = ",".join(shown)
    return f"{text} + {count - 3} more..." if more else text


@describer("Service")
def describe_service(service: dict, related: Related) -> str:
    meta, spec = _meta(service), service.get("spec") or {}
    slices = related.list("EndpointSlice", meta.get("namespace", "default"),
                          f"kubernetes.io/service-name={meta.get('name')}")
    service_type = spec.get("type") or "ClusterIP"
    w = TabWriter()
    w.write(0, f"Name:\t{meta.get('name')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', 'default')}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Selector:\t{format_labels(spec.get('selector'))}\n")
    w.write(0, f"Type:\t{service_type}\n")
    if service_type != "ExternalName":
        w.write(0, f"IP Family Policy:\t{spec.get('ipFamilyPolicy') or 'SingleStack'}\n")
    w.write(0, f"IP Families:\t{','.join(spec.get('ipFamilies') or []) or '<none>'}\n")
    w.write(0, f"IP:\t{spec.get('clusterIP', '')}\n")
    w.write(0, f"IPs:\t{','.join(spec.get('clusterIPs') or []) or '<none>'}\n")
    if spec.get("externalIPs"):
        w.write(0, f"External IPs:\t{','.join(spec['externalIPs'])}\n")
    if spec.get("externalName"):
        w.write(0, f"External Name:\t{spec['externalName']}\n")
    for port in spec.get("ports") or []:
        name = port.get("name") or "<unset>"
        protocol = port.get("protocol") or "TCP"
        w.write(0, f"Port:\t{name}\t{port.get('port')}/{protocol}\n")
        w.write(0, f"TargetPort:\t{port.get('targetPort', port.get('port'))}/{protocol}\n")
        if port.get("appProtocol"):
            w.write(0, f"AppProtocol:\t{port['appProtocol']}\n")
        if port.get("nodePort"):
            w.write(0, f"NodePort:\t{name}\t{port['nodePort']}/{protocol}\n")
        w.write(0, f"Endpoints:\t{_endpoints(slices, port.get('name') or '')}\n")
    w.write(0, f"Session Affinity:\t{spec.get('sessionAffinity') or 'None'}\n")
    if service_type in ("NodePort", "LoadBalancer"):
        w.write(0, f"External Traffic Policy:\t{spec.get('externalTrafficPolicy') or 'Cluster'}\n")
    if service_type != "ExternalName":
        w.write(0, f"Internal Traffic Policy:\t{spec.get('internalTrafficPolicy') or 'Cluster'}\n")
    describe_events(w, events_of(service, related))
    return w.text()


@describer("EndpointSlice")
def describe_endpointslice(eps: dict, related: Related) -> str:
    meta = _meta(eps)
    w = TabWriter()
    w.write(0, f"Name:\t{meta.get('name')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', 'default')}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"AddressType:\t{eps.get('addressType', '')}\n")
    ports = eps.get("ports") or []
    if not ports:
        w.write(0, "Ports: <unset>\n")
    else:
        w.write(0, "Ports:\n")
        w.write(1, "Name\tPort\tProtocol\n")
        w.write(1, "----\t----\t--------\n")
        for port in ports:
            number = port.get("port")
            w.write(1, f"{port.get('name') or '<unset>'}\t"
                       f"{'<unset>' if number is None else number}\t"
                       f"{port.get('protocol') or 'TCP'}\n")
    endpoints = eps.get("endpoints") or []
    if not endpoints:
        w.write(0, "Endpoints: <none>\n")
    else:
        w.write(0, "Endpoints:\n")
        for endpoint in endpoints:
            w.write(1, f"- Addresses:\t{', '.join(endpoint.get('addresses') or []) or '<none>'}\n")
            w.write(2, "Conditions:\n")
            ready = (endpoint.get("conditions") or {}).get("ready")
            w.write(3, f"Ready:\t{'<unset>' if ready is None else _bool(ready)}\n")
            w.write(2, f"Hostname:\t{endpoint.get('hostname') or '<unset>'}\n")
            target = endpoint.get("targetRef")
            if target:
                w.write(2, f"TargetRef:\t{target.get('kind')}/{target.get('name')}\n")
            w.write(2, f"NodeName:\t{endpoint.get('nodeName') or '<unset>'}\n")
            w.write(2, f"Zone:\t{endpoint.get('zone') or '<unset>'}\n")
    describe_events(w, events_of(eps, related))
    return w.text()


@describer("Namespace")
def describe_namespace(ns: dict, related: Related) -> str:
    meta, status = _meta(ns), ns.get("status") or {}
    w = TabWriter()
    w.write(0, f"Name:\t{meta.get('name')}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Status:\t{status.get('phase', '')}\n")
    if status.get("conditions"):
        w.write(0, "Conditions:\n")
        w.write(1, "Type\tStatus\tLastTransitionTime\tReason\tMessage\n")
        w.write(1, "----\t------\t------------------\t------\t-------\n")
        for c in status["conditions"]:
            w.write(1, f"{c.get('type')}\t{c.get('status')}\t"
                       f"{rfc1123z(c.get('lastTransitionTime'))}\t{c.get('reason', '')}\t"
                       f"{c.get('message', '')}\n")
    # tinykube serves no ResourceQuota or LimitRange: kubectl then leaves both sections out
    return w.text()


_ACCESS_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
                 "ReadWriteOncePod": "RWOP"}


def _claims_of(pod: dict) -> set[str]:
    return {(v.get("persistentVolumeClaim") or {}).get("claimName", "")
            for v in (pod.get("spec") or {}).get("volumes") or []} - {""}


@describer("PersistentVolumeClaim")
def describe_pvc(pvc: dict, related: Related) -> str:
    meta, spec, status = _meta(pvc), pvc.get("spec") or {}, pvc.get("status") or {}
    w = TabWriter()
    w.write(0, f"Name:\t{meta.get('name')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', 'default')}\n")
    w.write(0, f"StorageClass:\t{spec.get('storageClassName', '')}\n")
    if meta.get("deletionTimestamp"):
        w.write(0, f"Status:\tTerminating (lasts {since(meta['deletionTimestamp'])})\n")
    else:
        w.write(0, f"Status:\t{status.get('phase', '')}\n")
    w.write(0, f"Volume:\t{spec.get('volumeName', '')}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Finalizers:\t{_go_list(meta.get('finalizers'))}\n")
    capacity = access = ""
    if spec.get("volumeName"):
        access = ",".join(_ACCESS_MODES.get(m, m) for m in status.get("accessModes") or [])
        capacity = str((status.get("capacity") or {}).get("storage", ""))
    w.write(0, f"Capacity:\t{capacity}\n")
    w.write(0, f"Access Modes:\t{access}\n")
    if spec.get("volumeMode"):
        w.write(0, f"VolumeMode:\t{spec['volumeMode']}\n")
    users = sorted(_meta(p).get("name", "") for p in
                   related.list("Pod", meta.get("namespace", "default"))
                   if meta.get("name") in _claims_of(p))
    w.write(0, "Used By:\t")
    if not users:
        w.write(0, "<none>\n")
    for i, name in enumerate(users):
        w.write(0, ("\t" if i else "") + name + "\n")
    if status.get("conditions"):
        w.write(0, "Conditions:\n")
        w.write(1, "Type\tStatus\tLastProbeTime\tLastTransitionTime\tReason\tMessage\n")
        w.write(1, "----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in status["conditions"]:
            w.write(1, f"{c.get('type')} \t{c.get('status')} \t"
                       f"{rfc1123z(c.get('lastProbeTime'))} \t"
                       f"{rfc1123z(c.get('lastTransitionTime'))} \t{c.get('reason', '')} \t"
                       f"{c.get('message', '')}\n")
    describe_events(w, events_of(pvc, related))
    return w.text()


def _data_size(value: Any) -> int:
    """Bytes of a base64 `data`/`binaryData` value (its text length if it is not base64)."""
    try:
        return len(configdata.decode(value))
    except ValueError:
        return len(str(value))


@describer("ConfigMap")
def describe_configmap(cm: dict, related: Related) -> str:
    meta = _meta(cm)
    w = TabWriter()
    w.write(0, f"Name:\t{meta.get('name')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', 'default')}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, "\nData\n====\n")
    for key, value in sorted((cm.get("data") or {}).items()):
        w.write(0, f"{key}:\n----\n")
        w.write(0, f"{value}\n")
        w.write(0, "\n")
    w.write(0, "\nBinaryData\n====\n")
    for key, value in sorted((cm.get("binaryData") or {}).items()):
        w.write(0, f"{key}: {_data_size(value)} bytes\n")
    w.write(0, "\n")
    describe_events(w, events_of(cm, related))
    return w.text()


@describer("Secret")
def describe_secret(secret: dict, related: Related) -> str:
    """Values are never shown, only each key's size (kubectl shows a service-account token,
    a type tinykube does not issue); no events, as kubectl's."""
    meta = _meta(secret)
    w = TabWriter()
    w.write(0, f"Name:\t{meta.get('name')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', 'default')}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"\nType:\t{secret.get('type') or 'Opaque'}\n")
    w.write(0, "\nData\n====\n")
    for key, value in sorted((secret.get("data") or {}).items()):
        w.write(0, f"{key}:\t{_data_size(value)} bytes\n")
    return w.text()


NODE_LEASE_NAMESPACE = "kube-node-lease"
NODE_ROLE_PREFIX = "node-role.kubernetes.io/"


def _node_roles(labels: dict) -> str:
    roles = {k[len(NODE_ROLE_PREFIX):] for k in labels if k.startswith(NODE_ROLE_PREFIX)}
    if labels.get("kubernetes.io/role"):
        roles.add(labels["kubernetes.io/role"])
    return ",".join(sorted(r for r in roles if r)) or "<none>"


def _cpu_text(millis: int) -> str:
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def _memory_text(size: int) -> str:
    for suffix, unit in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def _pod_resources(pod: dict) -> dict[str, int]:
    """Sums over the pod's containers: cpu (millicores) and memory (bytes), requests
    (defaulting to the limit, as the API server defaults them) and limits."""
    sums = dict.fromkeys(("cpu-req", "cpu-lim", "mem-req", "mem-lim"), 0)
    for c in (pod.get("spec") or {}).get("containers") or []:
        resources = c.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = {**limits, **(resources.get("requests") or {})}
        try:
            sums["cpu-req"] += quantity.cpu_millis(requests.get("cpu", 0))
            sums["cpu-lim"] += quantity.cpu_millis(limits.get("cpu", 0))
            sums["mem-req"] += quantity.memory_bytes(requests.get("memory", 0))
            sums["mem-lim"] += quantity.memory_bytes(limits.get("memory", 0))
        except ValueError:
            continue
    return sums


def _share(used: int, total: int) -> str:
    return f"({int(used / total * 100) if total else 0}%)"


@describer("Node")
def describe_node(node: dict, related: Related) -> str:
    meta, spec, status = _meta(node), node.get("spec") or {}, node.get("status") or {}
    name = meta.get("name")
    w = TabWriter()
    w.write(0, f"Name:\t{name}\n")
    w.write(0, f"Roles:\t{_node_roles(meta.get('labels') or {})}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"CreationTimestamp:\t{rfc1123z(meta.get('creationTimestamp'))}\n")
    taints = sorted(spec.get("taints") or [],
                    key=lambda t: f"{t.get('effect', '')},{t.get('key', '')}")
    w.write(0, "Taints:\t")
    if not taints:
        w.write(0, "<none>\n")
    for i, t in enumerate(taints):
        value = f"={t['value']}" if t.get("value") else ""
        w.write(0, ("\t" if i else "") + f"{t.get('key')}{value}:{t.get('effect')}\n")
    w.write(0, f"Unschedulable:\t{_bool(spec.get('unschedulable'))}\n")
    lease = next((item for item in related.list("Lease", NODE_LEASE_NAMESPACE)
                  if _meta(item).get("name") == name), None)
    lease_spec = (lease or {}).get("spec") or {}
    w.write(0, "Lease:\n")
    w.write(1, f"HolderIdentity:\t{lease_spec.get('holderIdentity') or '<unset>'}\n")
    for field, title in (("acquireTime", "AcquireTime"), ("renewTime", "RenewTime")):
        shown = rfc1123z(lease_spec[field]) if lease_spec.get(field) else "<unset>"
        w.write(1, f"{title}:\t{shown}\n")
    conditions = status.get("conditions") or []
    if conditions:
        w.write(0, "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\t"
                   "Reason\tMessage\n")
        w.write(1, "----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in conditions:
            w.write(1, f"{c.get('type')} \t{c.get('status')} \t"
                       f"{rfc1123z(c.get('lastHeartbeatTime'))} \t"
                       f"{rfc1123z(c.get('lastTransitionTime'))} \t{c.get('reason', '')} \t"
                       f"{c.get('message', '')}\n")
    w.write(0, "Addresses:\n")
    for address in status.get("addresses") or []:
        w.write(1, f"{address.get('type')}:\t{address.get('address')}\n")
    for field, title in (("capacity", "Capacity"), ("allocatable", "Allocatable")):
        if status.get(field):
            w.write(0, f"{title}:\n")
            for resource in sorted(status[field]):
                w.write(0, f"  {resource}:\t{status[field][resource]}\n")
    info = status.get("nodeInfo") or {}
    w.write(0, "System Info:\n")
    for field, title in (("machineID", "Machine ID"), ("systemUUID", "System UUID"),
                         ("bootID", "Boot ID"), ("kernelVersion", "Kernel Version"),
                         ("osImage", "OS Image"), ("operatingSystem", "Operating System"),
                         ("architecture", "Architecture"),
                         ("containerRuntimeVersion", "Container Runtime Version"),
                         ("kubeletVersion", "Kubelet Version")):
        w.write(0, f"  {title}:\t{info.get(field, '')}\n")
    if spec.get("podCIDR"):
        w.write(0, f"PodCIDR:\t{spec['podCIDR']}\n")
    if spec.get("podCIDRs"):
        w.write(0, f"PodCIDRs:\t{','.join(spec['podCIDRs'])}\n")
    if spec.get("providerID"):
        w.write(0, f"ProviderID:\t{spec['providerID']}\n")
    # The all-in-one daemon runs pods no scheduler bound on its one node: count them there.
    only_node = len(related.list("Node", None)) == 1
    pods = [p for p in related.list("Pod", None)
            if ((p.get("spec") or {}).get("nodeName") or (name if only_node else None)) == name
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    allocatable = status.get("allocatable") or status.get("capacity") or {}
    try:
        cpu_total = quantity.cpu_millis(allocatable.get("cpu", 0))
        mem_total = quantity.memory_bytes(allocatable.get("memory", 0))
    except ValueError:
        cpu_total = mem_total = 0
    w.write(0, f"Non-terminated Pods:\t({len(pods)} in total)\n")
    w.write(1, "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\t"
               "Memory Limits\tAge\n")
    w.write(1, "---------\t----\t\t------------\t----------\t---------------\t"
               "-------------\t---\n")
    totals = dict.fromkeys(("cpu-req", "cpu-lim", "mem-req", "mem-lim"), 0)
    for pod in pods:
        used = _pod_resources(pod)
        for key in totals:
            totals[key] += used[key]
        w.write(1, f"{_meta(pod).get('namespace', 'default')}\t{_meta(pod).get('name')}\t\t"
                   f"{_cpu_text(used['cpu-req'])} {_share(used['cpu-req'], cpu_total)}\t"
                   f"{_cpu_text(used['cpu-lim'])} {_share(used['cpu-lim'], cpu_total)}\t"
                   f"{_memory_text(used['mem-req'])} {_share(used['mem-req'], mem_total)}\t"
                   f"{_memory_text(used['mem-lim'])} {_share(used['mem-lim'], mem_total)}\t"
                   f"{since(_meta(pod).get('creationTimestamp'))}\n")
    w.write(0, "Allocated resources:\n  (Total limits may be over 100 percent, i.e., "
               "overcommitted.)\n")
    w.write(1, "Resource\tRequests\tLimits\n")
    w.write(1, "--------\t--------\t------\n")
    w.write(1, f"cpu\t{_cpu_text(totals['cpu-req'])} {_share(totals['cpu-req'], cpu_total)}\t"
               f"{_cpu_text(totals['cpu-lim'])} {_share(totals['cpu-lim'], cpu_total)}\n")
    w.write(1, f"memory\t{_memory_text(totals['mem-req'])} "
               f"{_share(totals['mem-req'], mem_total)}\t{_memory_text(totals['mem-lim'])} "
               f"{_share(totals['mem-lim'], mem_total)}\n")
    w.write(1, "ephemeral-storage\t0 (0%)\t0 (0%)\n")
    describe_events(w, events_of(node, related))
    return w.text()


# ---- kinds without a describer: kubectl's generic one ------------------------------------

_GENERIC_SKIP = {".metadata.managedFields", ".metadata.name", ".metadata.namespace",
                 ".metadata.labels", ".metadata.annotations"}
_ACRONYMS = {"API", "URL", "UID", "GUID"}


def _camel_split(word: str) -> list[str]:
    """github.com/fatih/camelcase.Split: runs of one character class, an upper-case run's
    last letter moved to a following lower-case run (`HTTPServer` -> HTTP, Server)."""
    def kind(ch: str) -> int:
        return 1 if ch.islower() else 2 if ch.isupper() else 3 if ch.isdigit() else 4
    runs: list[list[str]] = []
    for ch in word:
        if runs and kind(runs[-1][-1]) == kind(ch):
            runs[-1].append(ch)
        else:
            runs.append([ch])
    for i in range(len(runs) - 1):
        if kind(runs[i][0]) == 2 and kind(runs[i + 1][0]) == 1:
            runs[i + 1].insert(0, runs[i].pop())
    return ["".join(r) for r in runs if r]


def smart_label(field: str) -> str:
    """kubectl's smartLabelFor: `apiVersion` -> `API Version`, `involvedObject` ->
    `Involved Object`; a field with characters other than letters and '-' as it is."""
    if any(not (ch.isalpha() or ch == "-") for ch in field):
        return field
    parts = _camel_split(field)
    merged: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        if (i < len(parts) - 1 and len(part) >= 2 and part.isupper()
                and parts[i + 1][:1].isupper()):
            merged.append(part + parts[i + 1])
            i += 2
            continue
        merged.append(part)
        i += 1
    shown = []
    for part in merged:
        if part == "_":
            continue
        if part.upper() in _ACRONYMS:
            part = part.upper()
        elif part.lower() == part:
            part = part.title()
        shown.append(part)
    return " ".join(shown)


def _unstructured(w: TabWriter, level: int, content: dict, prefix: str) -> None:
    for field in sorted(content):
        value = content[field]
        path = f"{prefix}.{field}"
        if path in _GENERIC_SKIP:
            continue
        if isinstance(value, dict):
            w.write(level, f"{smart_label(field)}:\n")
            _unstructured(w, level + 1, value, path)
        elif isinstance(value, list):
            w.write(level, f"{smart_label(field)}:\n")
            for child in value:
                if isinstance(child, dict):
                    _unstructured(w, level + 1, child, path)
                else:
                    w.write(level + 1, f"{_go_value(child)}\n")
        else:
            w.write(level, f"{smart_label(field)}:\t{_go_value(value)}\n")


def describe_generic(obj: dict, related: Related) -> str:
    meta = _meta(obj)
    w = TabWriter()
    w.write(0, f"Name:\t{meta.get('name')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    _unstructured(w, 0, obj, "")
    describe_events(w, events_of(obj, related))
    return w.text()
