"""`tinykube rollout status|history|undo|restart|pause|resume` for deployments and statefulsets.

Everything here is client side, as in kubectl (pkg/polymorphichelpers): `status` watches the
object and prints kubectl's progress lines until the rollout is done; `history` and `undo` read
the revisions the controllers keep (a Deployment's ReplicaSets with their
`deployment.kubernetes.io/revision` annotation, a StatefulSet's ControllerRevisions); `undo`
writes the chosen revision's pod template back into the object, so the controller rolls it
out like any edit (and reuses the old ReplicaSet, which becomes the newest revision);
`restart` stamps `kubectl.kubernetes.io/restartedAt` into the pod template.

The message functions (`deployment_status`, `statefulset_status`, `rollback_target`, ...) are
pure, so tests drive them with plain dicts.
"""

from __future__ import annotations

import argparse
import copy
import time
from datetime import datetime
from typing import Any

from tinykube.cli import printing
from tinykube.cli.common import add_namespace
from tinykube.cli.duration import parse_duration
from tinykube.client import Client, StreamIdle
from tinykube.controllers.deployment import util
from tinykube.model.kinds import KindInfo, lookup

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


class RolloutError(Exception):
    """A rollout that cannot finish or a request that cannot be done: `error: <message>`."""


def register(commands: argparse._SubParsersAction) -> None:
    rollout = commands.add_parser("rollout", help="manage the rollout of a deployment or "
                                                  "statefulset")
    sub = rollout.add_subparsers(dest="rollout_command", metavar="COMMAND")
    sub.required = True

    def target(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("target", help="deployment/NAME or statefulset/NAME (or TYPE NAME)")
        p.add_argument("name", nargs="?", help=argparse.SUPPRESS)
        add_namespace(p)
        return p

    p = target("status", "watch a rollout until it completes")
    p.add_argument("--timeout", default="0s",
                   help="give up after this long (e.g. 60s, 2m); 0 waits forever")
    p.add_argument("-w", "--watch", default=True, action=argparse.BooleanOptionalAction,
                   help="keep watching until done (default); --no-watch prints once")
    p.add_argument("--revision", type=int, default=0,
                   help="pin to a revision (deployments): fail if another one is rolling")
    p.set_defaults(handler=status)

    p = target("history", "list revisions")
    p.add_argument("--revision", type=int, default=0, help="show this revision's pod template")
    p.set_defaults(handler=history)

    p = target("undo", "roll back to the previous (or a given) revision")
    p.add_argument("--to-revision", type=int, default=0,
                   help="the revision to go back to (default: the previous one)")
    p.set_defaults(handler=undo)

    target("restart", "restart every pod by rolling out again").set_defaults(handler=restart)
    target("pause", "stop rolling out template changes").set_defaults(handler=pause)
    target("resume", "roll out the changes made while paused").set_defaults(handler=resume)


# ---- addressing ---------------------------------------------------------------------------

def parse_target(target: str, name: str | None) -> tuple[KindInfo, str]:
    kind, slash, rest = target.partition("/")
    if slash:
        if name:
            raise RolloutError("give TYPE/NAME or TYPE NAME, not both")
        name = rest
    if not name:
        raise RolloutError("you must specify a resource: deployment/NAME or statefulset/NAME")
    info = lookup(kind)
    if not info.rollout:
        raise RolloutError(f"no rollout for {info.resource}: only deployments and "
                           f"statefulsets have rollouts")
    return info, name


def label(info: KindInfo, name: str) -> str:
    """`deployment.apps/web`: how kubectl names the object in its output."""
    return f"{info.kind.lower()}.{info.group}/{name}" if info.group else \
        f"{info.kind.lower()}/{name}"


def quoted(info: KindInfo, name: str) -> str:
    """`deployments.apps "web"`: how kubectl names the object in its errors."""
    return f'{info.resource} "{name}"'


def _run(args: argparse.Namespace, fn: Any, client: Client) -> int:
    try:
        info, name = parse_target(args.target, args.name)
        return fn(args, client, info, name)
    except RolloutError as e:
        import sys

        print(f"error: {e}", file=sys.stderr)
        return 1


# ---- status -------------------------------------------------------------------------------

def deployment_status(d: dict, revision: int = 0) -> tuple[str, bool]:
    """kubectl's DeploymentStatusViewer: (message, done); RolloutError when it cannot finish."""
    name = d["metadata"]["name"]
    if revision > 0 and util.revision(d) != revision:
        raise RolloutError(f"desired revision ({revision}) is different from the running "
                           f"revision ({util.revision(d)})")
    status = d.get("status") or {}
    if d["metadata"].get("generation", 0) > status.get("observedGeneration", 0):
        return "Waiting for deployment spec update to be observed...", False
    cond = util.get_condition(status, util.PROGRESSING)
    if cond is not None and cond.get("reason") == util.TIMED_OUT:
        raise RolloutError(f'deployment "{name}" exceeded its progress deadline')
    want = util.replicas(d)
    updated = status.get("updatedReplicas", 0)
    replicas = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    prefix = f'Waiting for deployment "{name}" rollout to finish: '
    if updated < want:
        return f"{prefix}{updated} out of {want} new replicas have been updated...", False
    if replicas > updated:
        return f"{prefix}{replicas - updated} old replicas are pending termination...", False
    if available < updated:
        return f"{prefix}{available} of {updated} updated replicas are available...", False
    return f'deployment "{name}" successfully rolled out', True


def statefulset_status(sts: dict) -> tuple[str, bool]:
    """kubectl's StatefulSetStatusViewer. Kubernetes always defaults
    updateStrategy.rollingUpdate.partition to 0, so a RollingUpdate set reports the
    partitioned form."""
    spec, status = sts.get("spec") or {}, sts.get("status") or {}
    strategy = spec.get("updateStrategy") or {}
    if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
        raise RolloutError("rollout status is only available for RollingUpdate strategy type")
    observed = status.get("observedGeneration", 0)
    if not observed or sts["metadata"].get("generation", 0) > observed:
        return "Waiting for statefulset spec update to be observed...", False
    want = 1 if spec.get("replicas") is None else int(spec["replicas"])
    ready = status.get("readyReplicas", 0)
    if ready < want:
        return f"Waiting for {want - ready} pods to be ready...", False
    partition = int(((strategy.get("rollingUpdate") or {}).get("partition")) or 0)
    updated = status.get("updatedReplicas", 0)
    if updated < want - partition:
        return (f"Waiting for partitioned roll out to finish: {updated} out of "
                f"{want - partition} new pods have been updated..."), False
    return f"partitioned roll out complete: {updated} new pods have been updated...", True


def status_of(obj: dict, revision: int = 0) -> tuple[str, bool]:
    if obj["kind"] == "Deployment":
        return deployment_status(obj, revision)
    return statefulset_status(obj)


def status(args: argparse.Namespace, client: Client) -> int:
    return _run(args, _status, client)


def _status(args: argparse.Namespace, client: Client, info: KindInfo, name: str) -> int:
    timeout = parse_duration(args.timeout)
    deadline = time.monotonic() + timeout if timeout > 0 else None
    obj = client.get(info, name, args.namespace)  # NotFound is the server's error, as kubectl
    last = None

    def show(obj: dict) -> bool:
        nonlocal last
        message, done = status_of(obj, args.revision)
        if message != last:
            print(message, flush=True)
            last = message
        return done

    if show(obj) or not args.watch:
        return 0
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise RolloutError("timed out waiting for the condition")
        try:
            for type_, event_obj in client.watch(info, args.namespace, name=name,
                                                 idle_timeout=remaining):
                if event_obj.get("metadata", {}).get("name") != name:
                    continue
                if type_ == "DELETED":
                    raise RolloutError(f"{quoted(info, name)} was deleted")
                if show(event_obj):
                    return 0
                if deadline is not None and time.monotonic() >= deadline:
                    raise RolloutError("timed out waiting for the condition")
        except StreamIdle:
            continue  # nothing happened until the deadline: the check above ends it


# ---- history ------------------------------------------------------------------------------

def controlled(objs: list[dict], owner: dict) -> list[dict]:
    uid = owner["metadata"]["uid"]
    return [o for o in objs if util.controller_uid(o) == uid]


def revisions(client: Client, obj: dict) -> dict[int, dict]:
    """revision number -> {"template": ..., "annotations": ..., "object": ...}."""
    namespace = obj["metadata"].get("namespace", "default")
    found: dict[int, dict] = {}
    if obj["kind"] == "Deployment":
        for rs in controlled(client.list("ReplicaSet", namespace), obj):
            found[util.revision(rs)] = {
                "template": (rs.get("spec") or {}).get("template") or {},
                "annotations": (rs["metadata"].get("annotations") or {}), "object": rs}
    else:
        for rev in controlled(client.list("ControllerRevision", namespace), obj):
            found[int(rev.get("revision", 0))] = {
                "template": revision_template(rev),
                "annotations": rev["metadata"].get("annotations") or {}, "object": rev}
    return found


def revision_template(rev: dict) -> dict:
    """A ControllerRevision's pod template: `data` is the template (or, as Kubernetes stores
    it, a patch `{"spec": {"template": ...}}`)."""
    data = rev.get("data") or {}
    if isinstance(data.get("spec"), dict) and "template" in data["spec"]:
        data = data["spec"]["template"]
    data = dict(data)
    data.pop("$patch", None)
    return data


def history_table(found: dict[int, dict]) -> str:
    rows = []
    for number in sorted(found):
        cause = found[number]["annotations"].get(util.CHANGE_CAUSE) or "<none>"
        rows.append([str(number), cause])
    return printing.table(["REVISION", "CHANGE-CAUSE"], rows)


def history(args: argparse.Namespace, client: Client) -> int:
    return _run(args, _history, client)


def _history(args: argparse.Namespace, client: Client, info: KindInfo, name: str) -> int:
    obj = client.get(info, name, args.namespace)
    found = revisions(client, obj)
    if args.revision:
        if args.revision not in found:
            raise RolloutError(f"unable to find the specified revision {args.revision}")
        print(f"{label(info, name)} with revision #{args.revision}")
        template = copy.deepcopy(found[args.revision]["template"])
        cause = found[args.revision]["annotations"].get(util.CHANGE_CAUSE)
        if cause:
            template.setdefault("metadata", {}).setdefault("annotations", {})[
                util.CHANGE_CAUSE] = cause
        print(describe_template(template))
        return 0
    if not found:
        print("No rollout history found.")
        return 0
    print(label(info, name))
    print(history_table(found))
    return 0


def describe_template(template: dict) -> str:
    """The pod template the way `kubectl describe` prints one."""
    meta, spec = template.get("metadata") or {}, template.get("spec") or {}
    lines = ["Pod Template:"]
    lines += _mapping("  Labels:", meta.get("labels"), "=")
    lines += _mapping("  Annotations:", meta.get("annotations"), ": ")
    lines.append("  Containers:")
    for c in spec.get("containers") or []:
        lines.append(f"   {c.get('name')}:")
        lines.append(f"    Image:\t{c.get('image') or '<none>'}")
        for field in ("command", "args"):
            if c.get(field):
                lines.append(f"    {field.capitalize()}:")
                lines += [f"      {part}" for part in c[field]]
        limits = (c.get("resources") or {}).get("limits") or {}
        if limits:
            lines.append("    Limits:")
            lines += [f"      {k}:\t{v}" for k, v in sorted(limits.items())]
        env = c.get("env") or []
        lines.append("    Environment:" + ("" if env else "\t<none>"))
        lines += [f"      {e.get('name')}:\t{e.get('value', '')}" for e in env]
        mounts = c.get("volumeMounts") or []
        lines.append("    Mounts:" + ("" if mounts else "\t<none>"))
        lines += [f"      {m.get('mountPath')} from {m.get('name')}"
                  + (" (ro)" if m.get("readOnly") else " (rw)") for m in mounts]
    volumes = spec.get("volumes") or []
    lines.append("  Volumes:" + ("" if volumes else "\t<none>"))
    for v in volumes:
        kind = next((k for k in v if k != "name"), "")
        lines.append(f"   {v.get('name')}:\t{kind}")
    return "\n".join(lines)


def _mapping(title: str, mapping: dict | None, sep: str) -> list[str]:
    if not mapping:
        return [f"{title}\t<none>"]
    items = [f"{k}{sep}{v}" for k, v in sorted(mapping.items())]
    return [f"{title}\t{items[0]}"] + [f"\t{item}" for item in items[1:]]


# ---- undo ---------------------------------------------------------------------------------

def rollback_target(obj: dict, found: dict[int, dict], to_revision: int) -> tuple[int, dict]:
    """kubectl's choice of revision: `to_revision`, or the newest one before the current (0).
    A negative revision is not found, as in kubectl (not "the one before")."""
    if to_revision < 0:
        raise RolloutError(f"unable to find specified revision {to_revision} in history")
    if to_revision > 0:
        if to_revision not in found:
            raise RolloutError(f"unable to find specified revision {to_revision} in history")
        return to_revision, found[to_revision]
    ordered = sorted(found)
    if len(ordered) < 2:
        if obj["kind"] == "Deployment":
            raise RolloutError(f'no rollout history found for deployment '
                               f'"{obj["metadata"]["name"]}"')
        raise RolloutError("unable to find specified revision 0 in history")
    return ordered[-2], found[ordered[-2]]


def rolled_back(obj: dict, found: dict[int, dict], to_revision: int) -> tuple[dict | None, int]:
    """The object with the chosen revision's template (and, for a Deployment, that
    ReplicaSet's annotations such as change-cause); None if it already has that template."""
    number, chosen = rollback_target(obj, found, to_revision)
    template = util.strip_hash_label(chosen["template"])
    if obj["kind"] == "StatefulSet":
        labels = (template.get("metadata") or {}).get("labels")
        if labels:
            labels.pop("controller-revision-hash", None)
    current = (obj.get("spec") or {}).get("template") or {}
    if util.equal_ignore_hash(current, template):
        return None, number
    new = copy.deepcopy(obj)
    new["spec"]["template"] = template
    if obj["kind"] == "Deployment":
        old_annotations = obj["metadata"].get("annotations") or {}
        annotations = {k: v for k, v in old_annotations.items() if k in util.ANNOTATIONS_TO_SKIP}
        annotations.update({k: v for k, v in chosen["annotations"].items()
                            if k not in util.ANNOTATIONS_TO_SKIP})
        new["metadata"]["annotations"] = annotations
    return new, number


def undo(args: argparse.Namespace, client: Client) -> int:
    return _run(args, _undo, client)


def _undo(args: argparse.Namespace, client: Client, info: KindInfo, name: str) -> int:
    if args.to_revision < 0:  # kubectl checks this first, before reading the object
        rollback_target({}, {}, args.to_revision)
    obj = client.get(info, name, args.namespace)
    if info.kind == "Deployment" and util.paused(obj):
        raise RolloutError(f"you cannot rollback a paused deployment; resume it first with "
                           f"'tinykube rollout resume {label(info, name)}' and try again")
    new, number = rolled_back(obj, revisions(client, obj), args.to_revision)
    if new is None:
        print(f"{label(info, name)} skipped rollback (current template already matches "
              f"revision {number})")
        return 0
    client.update(new)  # carries the resourceVersion read: a concurrent edit is a Conflict
    print(f"{label(info, name)} rolled back")
    return 0


# ---- restart, pause, resume ---------------------------------------------------------------

def restart(args: argparse.Namespace, client: Client) -> int:
    return _run(args, _restart, client)


def _restart(args: argparse.Namespace, client: Client, info: KindInfo, name: str) -> int:
    obj = client.get(info, name, args.namespace)
    if info.kind == "Deployment" and util.paused(obj):
        raise RolloutError("can't restart paused deployment (run rollout resume first)")
    template = obj.setdefault("spec", {}).setdefault("template", {})
    annotations = template.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[RESTARTED_AT] = datetime.now().astimezone().isoformat(timespec="seconds")
    client.update(obj)
    print(f"{label(info, name)} restarted")
    return 0


def pause(args: argparse.Namespace, client: Client) -> int:
    return _run(args, lambda a, c, i, n: _set_paused(a, c, i, n, True), client)


def resume(args: argparse.Namespace, client: Client) -> int:
    return _run(args, lambda a, c, i, n: _set_paused(a, c, i, n, False), client)


def _set_paused(args: argparse.Namespace, client: Client, info: KindInfo, name: str,
                paused: bool) -> int:
    verb = "pausing" if paused else "resuming"
    if info.kind != "Deployment":
        raise RolloutError(f"{quoted(info, name)} {verb} is not supported")
    obj = client.get(info, name, args.namespace)
    if util.paused(obj) == paused:
        raise RolloutError(f"{quoted(info, name)} is "
                           + ("already paused" if paused else "not paused"))
    obj["spec"]["paused"] = paused
    client.update(obj)
    print(f"{label(info, name)} {'paused' if paused else 'resumed'}")
    return 0
