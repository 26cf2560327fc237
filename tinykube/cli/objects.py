"""Object commands: apply, get, describe, delete, scale, wait."""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tinykube.cli import describe as describing
from tinykube.cli import printing
from tinykube.cli.common import UsageError, add_namespace
from tinykube.cli.duration import parse_duration
from tinykube.client import Client, StreamIdle
from tinykube.model import defaults, validation
from tinykube.model.errors import ApiError, Invalid
from tinykube.model.kinds import KINDS, KindInfo, lookup
from tinykube.model.manifests import load_manifests

# `get all` / `delete all`: the kinds of Kubernetes' category "all".
ALL_KINDS = tuple(k.plural for k in KINDS if k.in_all)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("apply", help="create or update objects from YAML files")
    p.add_argument("-f", "--filename", action="append", required=True,
                   help="file, directory or - for stdin (repeatable)")
    add_namespace(p)
    p.set_defaults(handler=apply)

    p = commands.add_parser("get", help="list objects")
    p.add_argument("kind", help="kind(s): pods,rs,deploy,... or all, or KIND/NAME")
    p.add_argument("names", nargs="*")
    p.add_argument("-l", "--selector")
    p.add_argument("-o", "--output", choices=["wide", "yaml", "json", "name"])
    p.add_argument("-w", "--watch", action="store_true")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    add_namespace(p)
    p.set_defaults(handler=get)

    p = commands.add_parser("describe", help="show an object in detail, with its events")
    p.add_argument("kind")
    p.add_argument("names", nargs="*")
    p.add_argument("-l", "--selector")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    add_namespace(p)
    p.set_defaults(handler=describe)

    p = commands.add_parser("delete", help="delete objects")
    p.add_argument("kind", nargs="?")
    p.add_argument("names", nargs="*")
    p.add_argument("-f", "--filename", action="append")
    p.add_argument("--all", action="store_true")
    p.add_argument("-l", "--selector")
    p.add_argument("--cascade", default="background",
                   choices=["background", "foreground", "orphan", "true", "false"])
    p.add_argument("--grace-period", type=int, default=None)
    p.add_argument("--now", action="store_true", help="same as --grace-period=1")
    p.add_argument("--wait", default="true", choices=["true", "false"],
                   help="wait until the objects are gone (default true, as kubectl)")
    p.add_argument("--timeout", default="0", help="give up waiting after this long (0: never)")
    p.add_argument("--ignore-not-found", nargs="?", const="true", default=None,
                   choices=["true", "false"],
                   help="treat a missing object as deleted (default: true with --all or -l)")
    add_namespace(p)
    p.set_defaults(handler=delete)

    p = commands.add_parser("scale", help="set the replica count")
    p.add_argument("target", help="KIND/NAME or KIND")
    p.add_argument("name", nargs="?")
    p.add_argument("--replicas", type=int, required=True)
    add_namespace(p)
    p.set_defaults(handler=scale)

    p = commands.add_parser("wait", help="wait for a condition or deletion")
    p.add_argument("target", help="KIND/NAME")
    p.add_argument("--for", dest="condition", required=True,
                   help="condition=NAME[=VALUE] or delete")
    p.add_argument("--timeout", default="30s")
    add_namespace(p)
    p.set_defaults(handler=wait)


# ---- apply --------------------------------------------------------------------------------


def read_manifests(sources: list[str], namespace: str) -> list[dict]:
    documents: list[dict] = []
    for source in sources:
        for name, text in _read_sources(source):
            try:
                documents.extend(load_manifests(text, name))
            except ValueError as e:  # the loader's errors name the source, document and line
                raise UsageError(str(e)) from None
    for doc in documents:
        meta = doc.setdefault("metadata", {}) if isinstance(doc.get("metadata", {}), dict) else {}
        if isinstance(meta, dict) and "namespace" not in meta:
            meta["namespace"] = namespace
    return documents


def _read_sources(source: str) -> Iterator[tuple[str, str]]:
    if source == "-":
        yield "<stdin>", sys.stdin.read()
        return
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
        for file in files:
            yield str(file), file.read_text()
    elif path.exists():
        yield str(path), path.read_text()
    else:
        raise UsageError(f'the path "{source}" does not exist')


def check_locally(documents: list[dict]) -> None:
    """Validate every document before sending any, so a bad file changes nothing."""
    problems = []
    for doc in documents:
        errors = validation.validate(defaults.apply_defaults(copy.deepcopy(doc)))
        if errors:
            problems.append(Invalid.for_object(doc, errors).message)
    if problems:
        raise ApiError("\n".join(problems), code=422, reason="Invalid")


def apply(args: argparse.Namespace, client: Client) -> int:
    documents = read_manifests(args.filename, args.namespace)
    if not documents:
        raise UsageError("no objects passed to apply")
    check_locally(documents)
    failed = 0
    for doc in documents:
        info = lookup(doc["kind"])
        try:
            outcome, _ = client.apply(doc)
        except ApiError as e:
            print(f"Error from server ({e.reason}): {e.message}", file=sys.stderr)
            failed += 1
            continue
        print(f"{printing.qualified_kind(info.kind)}/{doc['metadata']['name']} {outcome}")
    return 1 if failed else 0


# ---- get ----------------------------------------------------------------------------------


def _kinds_and_names(kind_arg: str, names: list[str]) -> list[tuple[KindInfo, list[str]]]:
    if "/" in kind_arg:
        pairs = [kind_arg, *names]
        out: list[tuple[KindInfo, list[str]]] = []
        for pair in pairs:
            kind, _, name = pair.partition("/")
            out.append((lookup(kind), [name]))
        return out
    kinds = ALL_KINDS if kind_arg == "all" else kind_arg.split(",")
    return [(lookup(k), names) for k in kinds]


def _fetch(client: Client, info: KindInfo, names: list[str], namespace: str | None,
           selector: str | None) -> list[dict]:
    if names:
        return [client.get(info, name, namespace or "default") for name in names]
    return client.list(info, namespace, selector)


def get(args: argparse.Namespace, client: Client) -> int:
    namespace = "*" if args.all_namespaces else args.namespace
    targets = _kinds_and_names(args.kind, args.names)
    if args.watch:
        return _watch(args, client, targets[0][0], namespace)
    many_kinds = len(targets) > 1
    collected: list[dict] = []
    blocks = []
    missing = 0
    for info, names in targets:
        try:
            objects = _fetch(client, info, names, namespace, args.selector)
        except ApiError as e:
            if e.code != 404:
                raise
            print(f"Error from server (NotFound): {e.message}", file=sys.stderr)
            missing += 1
            continue
        collected.extend(objects)
        if objects and args.output not in ("json", "yaml", "name"):
            blocks.append(printing.render(objects, args.output, with_kind=many_kinds,
                                          all_namespaces=args.all_namespaces))
    if args.output in ("json", "yaml", "name"):
        single = len(targets) == 1 and bool(targets[0][1]) and len(collected) == 1
        if collected or args.output != "name":
            print(printing.render(collected, args.output, single=single))
    elif blocks:
        print("\n\n".join(blocks))
    elif not missing:
        where = "" if args.all_namespaces else f" in {args.namespace} namespace"
        print(f"No resources found{where}.", file=sys.stderr)
    return 1 if missing else 0


def _watch(args: argparse.Namespace, client: Client, info: KindInfo, namespace: str) -> int:
    header_done = False
    name = args.names[0] if args.names else None
    for _, obj in client.watch(info, namespace, name=name, label_selector=args.selector):
        if args.output in ("json", "yaml", "name"):
            print(printing.render([obj], args.output, single=True), flush=True)
            continue
        text = printing.render([obj], args.output, all_namespaces=args.all_namespaces)
        lines = text.splitlines()
        if not header_done:
            print(lines[0])
            header_done = True
        print(lines[1], flush=True)
    return 0


# ---- describe -----------------------------------------------------------------------------


def describe(args: argparse.Namespace, client: Client) -> int:
    """kubectl's layout (tinykube/cli/describe.py); descriptions are separated as kubectl
    separates them (two blank lines). As kubectl, `describe KIND NAME` with no object of that
    name describes every object whose name starts with NAME (`describe pods web`)."""
    targets = _kinds_and_names(args.kind, args.names)
    if args.all_namespaces and args.names:
        raise UsageError("a resource cannot be retrieved by name across all namespaces")
    namespace = "*" if args.all_namespaces else args.namespace
    found = 0
    for info, names in targets:
        try:
            objects = _fetch(client, info, names, namespace, args.selector)
        except ApiError as e:
            if e.code != 404 or "/" in args.kind or len(args.names) != 1:
                raise
            objects = [o for o in client.list(info, args.namespace, args.selector)
                       if o["metadata"]["name"].startswith(names[0])]
            if not objects:
                raise
        for obj in objects:
            sys.stdout.write(("\n\n" if found else "") + describing.describe(obj, client))
            found += 1
    if not found:
        where = "" if args.all_namespaces else f" in {args.namespace} namespace"
        print(f"No resources found{where}.", file=sys.stderr)
    return 0


# ---- delete -------------------------------------------------------------------------------


def delete(args: argparse.Namespace, client: Client) -> int:
    propagation = {"background": "Background", "true": "Background",
                   "foreground": "Foreground", "orphan": "Orphan",
                   "false": "Orphan"}[args.cascade]
    grace = 1 if args.now else args.grace_period
    targets: list[tuple[KindInfo, str, str]] = []
    if args.filename:
        for doc in read_manifests(args.filename, args.namespace):
            targets.append((lookup(doc["kind"]), doc["metadata"]["namespace"],
                            doc["metadata"]["name"]))
    elif args.kind:
        if args.all or args.selector:
            kinds = ALL_KINDS if args.kind == "all" else args.kind.split(",")
            for kind in kinds:
                info = lookup(kind)
                for obj in client.list(info, args.namespace, args.selector):
                    targets.append((info, args.namespace, obj["metadata"]["name"]))
        else:
            for info, names in _kinds_and_names(args.kind, args.names):
                if not names:
                    raise UsageError("resource(s) were provided, but no name was specified "
                                     "(give NAMEs, --all or -l)")
                targets += [(info, args.namespace, n) for n in names]
    else:
        raise UsageError("you must provide one or more resources by KIND NAME, -f or --all")
    # kubectl: --ignore-not-found defaults to true with --all or a selector, where an object
    # listed a moment ago may be gone by now (e.g. pods a Deployment's cascade removed).
    ignore_not_found = args.ignore_not_found == "true" if args.ignore_not_found is not None \
        else bool(args.all or args.selector)
    failed = 0
    deleted: list[tuple[KindInfo, str, str, str]] = []
    for info, namespace, name in targets:
        try:
            obj = client.delete(info, name, namespace, propagation=propagation,
                                grace_period=grace)
        except ApiError as e:
            if e.code != 404:
                raise
            if ignore_not_found:
                continue
            print(f"Error from server (NotFound): {e.message}", file=sys.stderr)
            failed += 1
            continue
        print(f'{printing.qualified_kind(info.kind)} "{name}" deleted')
        deleted.append((info, namespace, name, obj["metadata"]["uid"]))
    if args.wait == "true":
        deadline = _deadline(args.timeout)
        for info, namespace, name, uid in deleted:
            if not _wait_gone(client, info, namespace, name, uid, deadline):
                what = f"{printing.qualified_kind(info.kind)}/{name}"
                print(f"error: timed out waiting for {what} to be deleted", file=sys.stderr)
                return 1
    return 1 if failed else 0


def _deadline(timeout: str) -> float | None:
    seconds = parse_duration(timeout)
    return None if seconds <= 0 else time.monotonic() + seconds


def _wait_gone(client: Client, info: KindInfo, namespace: str, name: str, uid: str | None,
               deadline: float | None) -> bool:
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        # Read first and watch from what was read: an object removed at once (no finalizer,
        # not a pod) sends no event on a watch started after it went, which waited forever.
        try:
            current = client.get(info, name, namespace)
        except ApiError as e:
            if e.code == 404:
                return True
            raise
        if uid and current["metadata"]["uid"] != uid:
            return True
        try:
            for type_, obj in client.watch(info, namespace, name=name, idle_timeout=remaining,
                                           resource_version=current["metadata"]["resourceVersion"]):
                if type_ == "DELETED" or (uid and obj["metadata"]["uid"] != uid):
                    return True
                if deadline is not None and time.monotonic() > deadline:
                    return False
            return not _exists(client, info, namespace, name, uid)
        except StreamIdle:
            return not _exists(client, info, namespace, name, uid)


def _exists(client: Client, info: KindInfo, namespace: str, name: str, uid: str | None) -> bool:
    try:
        obj = client.get(info, name, namespace)
    except ApiError as e:
        if e.code == 404:
            return False
        raise
    return uid is None or obj["metadata"]["uid"] == uid


# ---- scale --------------------------------------------------------------------------------


def scale(args: argparse.Namespace, client: Client) -> int:
    if "/" in args.target:
        kind, _, name = args.target.partition("/")
    elif args.name:
        kind, name = args.target, args.name
    else:
        raise UsageError("give KIND/NAME or KIND NAME")
    info = lookup(kind)
    client.scale(info, name, args.namespace, args.replicas)
    print(f"{printing.qualified_kind(info.kind)}/{name} scaled")
    return 0


# ---- wait ---------------------------------------------------------------------------------


def wait(args: argparse.Namespace, client: Client) -> int:
    kind, _, name = args.target.partition("/")
    if not name:
        raise UsageError("wait needs KIND/NAME")
    info = lookup(kind)
    deadline = time.monotonic() + parse_duration(args.timeout)
    label = f"{printing.qualified_kind(info.kind)}/{name}"
    if args.condition == "delete":
        try:
            obj = client.get(info, name, args.namespace)
        except ApiError as e:
            if e.code == 404:
                print(f"{label} condition met")
                return 0
            raise
        if _wait_gone(client, info, args.namespace, name, obj["metadata"]["uid"], deadline):
            print(f"{label} condition met")
            return 0
        print(f"error: timed out waiting for the condition on {label}", file=sys.stderr)
        return 1
    if not args.condition.startswith("condition="):
        raise UsageError("--for must be condition=NAME[=VALUE] or delete")
    cond, _, value = args.condition[len("condition="):].partition("=")
    value = value or "True"
    client.get(info, name, args.namespace)  # a missing object is an error, not a wait
    try:
        while time.monotonic() < deadline:
            remaining = deadline - time.monotonic()
            for type_, obj in client.watch(info, args.namespace, name=name,
                                           idle_timeout=remaining):
                if type_ == "DELETED":
                    print(f"error: {label} was deleted", file=sys.stderr)
                    return 1
                if _has_condition(obj, cond, value):
                    print(f"{label} condition met")
                    return 0
                if time.monotonic() > deadline:
                    break
    except StreamIdle:
        pass
    print(f"error: timed out waiting for the condition on {label}", file=sys.stderr)
    return 1


def _has_condition(obj: dict, cond: str, value: str) -> bool:
    for c in obj.get("status", {}).get("conditions", []):
        if c.get("type", "").lower() == cond.lower():
            return str(c.get("status", "")).lower() == value.lower()
    return False
