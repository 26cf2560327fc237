"""The API server: Kubernetes' REST paths as HTTP/1.1 + JSON on a unix socket.

An ASGI application served by Hypercorn's trio worker, so the HTTP protocol itself is a
well-kept library's job; this module only routes and translates. Everything a user sends is
parsed, defaulted and validated *before* the store is touched, so a rejected request changes
nothing. Errors leave as Kubernetes `Status` objects with their HTTP codes.

Paths (ns = namespace):
  /api/v1/namespaces/{ns}/{plural}[/{name}[/status|/scale|/log|/exec]]   core kinds
  /apis/apps/v1/namespaces/{ns}/{plural}[/{name}[/status|/scale]]         apps kinds
  /api/v1/{plural}, /apis/apps/v1/{plural}                                 all namespaces
  /healthz                                          liveness, plus what the store could not load
  /tinykube/v1/unloadable[/repair]                  `tinykube doctor`: list / set aside such rows
"""

from __future__ import annotations

import builtins
import copy
import json
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs

import trio

from tinykube import labels
from tinykube.api import (
    binding,
    bodies,
    dryrun,
    events,
    execws,
    fieldvalidation,
    namespaces,
    paging,
    protobody,
    ssa,
    static,
    tables,
    watchopts,
)
from tinykube.api import patch as patching
from tinykube.api.patch import merge_patch  # noqa: F401  (re-exported: tests, old callers)
from tinykube.api.serviceips import ServiceAllocator, keep_allocated
from tinykube.model import defaults, names, schema, validation
from tinykube.model.errors import (
    AlreadyExists,
    ApiError,
    BadRequest,
    FieldError,
    Invalid,
    NotFound,
)
from tinykube.model.kinds import KINDS, KindInfo, UnknownKind, by_plural
from tinykube.store import Store

log = logging.getLogger("tinykube.api")

MAX_BODY_BYTES = 3 * 1024 * 1024  # etcd refuses values above ~1.5 MiB; leave room for YAML
MAX_JSON_DEPTH = 100
GENERATE_NAME_ATTEMPTS = 8  # a taken generated name is redrawn (Kubernetes' RetryGenerateName)
# A watch from a resourceVersion the store has not reached waits this long, then is answered
# 504 "Too large resource version" with Retry-After, as Kubernetes' watch cache does.
FUTURE_RV_WAIT_SECONDS = 3.0
DOCTOR_PATH = "/tinykube/v1/unloadable"

Scope = dict[str, Any]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class Node(Protocol):
    """What the API needs from the node side (the kubelet) for logs and exec."""

    def log_path(self, pod: dict, container: str, previous: bool = False) -> Path | None: ...

    async def exec_in_pod(self, namespace: str, name: str, container: str,
                          argv: list[str]) -> trio.Process: ...


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    parts: list[str] = field(default_factory=list)

    def json(self) -> Any:
        if bodies.is_yaml(self.headers.get("content-type")):
            return bodies.load_yaml(self.body)
        if protobody.is_protobuf(self.headers.get("content-type")):
            return protobody.load(self.body)  # typed clients' ConfigMaps and Secrets
        bodies.check_json(self.headers.get("content-type"))
        if not self.body:
            raise BadRequest("request body is empty")
        try:
            value = json.loads(self.body, object_pairs_hook=_refuse_duplicate_keys)
        except _DuplicateKey as e:
            raise BadRequest(f"request body has a duplicate key {e.key!r}: each field may "
                             "appear once") from None
        except RecursionError:
            raise BadRequest("request body is nested too deeply") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise BadRequest(f"request body is not valid JSON: {e}") from None
        if _depth(value) > MAX_JSON_DEPTH:
            raise BadRequest(f"request body is nested deeper than {MAX_JSON_DEPTH} levels")
        return value


@dataclass
class Route:
    info: KindInfo
    namespace: str | None
    name: str | None
    subresource: str | None


class NodeProxy(Protocol):
    """In cluster mode, the way to the agent that runs a pod (tinykube/cluster/kubeletproxy)."""

    async def forward_http(self, pod: dict, method: str, path: str, query: dict[str, str],
                           body: bytes, send: Send, receive: Receive) -> None: ...

    async def forward_websocket(self, scope: Scope, receive: Receive, send: Send,
                                find_pod: Callable[[str], dict]) -> None: ...


class ApiServer:
    def __init__(self, store: Store, node: Node | None = None,
                 services: ServiceAllocator | None = None,
                 proxy: NodeProxy | None = None) -> None:
        self.store = store
        self.node = node
        # A server without a node of its own sends logs and exec on to the pod's agent.
        self.proxy = proxy if node is None else None
        # ClusterIPs and NodePorts; shared with dry-run servers (they allocate, store nothing)
        self.services = services or ServiceAllocator(store)

    # ---- ASGI entry ----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] == "websocket":  # kubectl exec (v5.channel.k8s.io)
            if self.proxy is not None:
                await self.proxy.forward_websocket(scope, receive, send, self._exec_pod)
                return
            await execws.serve(scope, receive, send, self._start_exec)
            return
        if scope["type"] != "http":
            return
        try:
            request = await _read_request(scope, receive)
            await self.dispatch(request, receive, send)
        except _ClientGone:
            return
        except ApiError as e:
            await _send_json(send, e.code, e.status())
        except trio.Cancelled:
            raise
        except Exception as e:  # a bug must not take the daemon down; tell the client
            log.exception("internal error serving %s %s", scope.get("method"), scope.get("path"))
            await _send_json(send, 500, ApiError(f"internal error: {e}").status())

    async def dispatch(self, request: Request, receive: Receive, send: Send) -> None:
        if request.path == "/healthz":
            await _send_json(send, 200, self._health())
            return
        if request.path.startswith(DOCTOR_PATH):
            await _send_json(send, 200, self._doctor(request))
            return
        if request.method == "GET" and await static.answer(request.path, request.headers, send):
            return  # /version, discovery, OpenAPI
        namespace_path = namespaces.route(request.path)
        if namespace_path is not None:
            code, body = await namespaces.handle(self, request, *namespace_path)
            await _send_json(send, code, body)
            return
        route = _route(request.path)
        if route.info.kind == "Event":
            if request.method == "POST" and route.name is None and route.namespace:
                await _send_json(send, 201, await self._record_posted_event(route, request))
                return
            if request.method != "GET":
                raise ApiError(f"method {request.method} is not allowed on events: they are "
                               "recorded by POST to a namespace's events (agents' kubelets) "
                               "or by tinykube itself", code=405, reason="MethodNotAllowed")
            listed = self._list_events(route, request)
            if route.name is not None:  # one event by name (`describe ev NAME`), not the list
                found = [e for e in listed["items"] if e["metadata"]["name"] == route.name]
                if not found:
                    raise NotFound.for_object("Event", route.name)
                listed = found[0]
            await _send_json(send, 200, _as_table_if_asked(route, request, listed))
            return
        fieldvalidation.begin(request.query)  # every request: the mode is per request
        handler = self._for(request)._handler(request.method, route)
        if route.subresource in ("log", "exec"):
            await handler(route, request, send, receive)
            return
        if request.method == "GET" and route.name is None and _truthy(request.query.get("watch")):
            await self.watch(route, request, send, receive)
            return
        code, body = await handler(route, request)
        await _send_json(send, code, _as_table_if_asked(route, request, body),
                         warnings=self._warnings(request) + fieldvalidation.warnings())

    def _for(self, request: Request) -> ApiServer:
        """This server, or for `dryRun=All` one whose writes store nothing."""
        if request.method in ("POST", "PUT", "PATCH", "DELETE") and dryrun.requested(
                request.query):
            return ApiServer(dryrun.DryRunStore(self.store), self.node,  # type: ignore[arg-type]
                             self.services, self.proxy)
        return self

    def _handler(self, method: str, route: Route) -> Any:
        table: dict[tuple[str, str | None, bool], Any] = {
            ("GET", None, False): self.list,
            ("POST", None, False): self.create,
            ("GET", None, True): self.get,
            ("PUT", None, True): self.replace,
            ("PATCH", None, True): self.patch,
            ("DELETE", None, True): self.delete,
            ("DELETE", None, False): self.delete_collection,
            ("GET", "status", True): self.get,
            ("PUT", "status", True): self.replace_status,
            ("PATCH", "status", True): self.patch_status,
            ("GET", "scale", True): self.get_scale,
            ("PUT", "scale", True): self.replace_scale,
            ("PATCH", "scale", True): self.patch_scale,
            ("GET", "log", True): self.logs,
            ("POST", "exec", True): self.exec,
            ("POST", "binding", True): self.bind,
        }
        handler = table.get((method, route.subresource, route.name is not None))
        if handler is None:
            raise ApiError(f"method {method} is not allowed on this path", code=405,
                           reason="MethodNotAllowed")
        if route.subresource == "scale" and not route.info.scalable:
            raise NotFound(f"{route.info.plural} have no scale subresource")
        if route.subresource in ("log", "exec", "binding") and route.info.kind != "Pod":
            raise NotFound(f"{route.info.plural} have no {route.subresource} subresource")
        return handler

    # ---- health and the store's unloadable objects (`tinykube doctor`) ------------------

    def _health(self) -> dict:
        unloadable = len(self.store.unloadable)
        if not unloadable:
            return {"status": "ok"}
        return {"status": "ok", "unloadableObjects": unloadable,
                "message": f"{unloadable} stored object(s) could not be loaded and are not "
                           "served; run `tinykube doctor`"}

    def _warnings(self, request: Request) -> list[str]:
        """A Warning header on reads while the store holds unloadable objects (kubectl prints
        these as `Warning: ...`)."""
        unloadable = len(self.store.unloadable)
        if request.method != "GET" or not unloadable:
            return []
        return [(f"{unloadable} stored object(s) could not be loaded and are not served; "
                 "run `tinykube doctor`")]

    def _doctor(self, request: Request) -> dict:
        items = [{"kind": k, "namespace": ns, "name": n, "reason": why}
                 for (k, ns, n), why in sorted(self.store.unloadable.items())]
        if request.path == DOCTOR_PATH and request.method == "GET":
            return {"items": items}
        if request.path == f"{DOCTOR_PATH}/repair" and request.method == "POST":
            for item in items:
                key = (item["kind"], item["namespace"], item["name"])
                item["backup"] = str(self.store.set_aside(key))
            return {"items": items}
        raise NotFound(f"the server could not find the requested resource ({request.path})")

    # ---- reads ---------------------------------------------------------------------------

    async def get(self, route: Route, request: Request) -> tuple[int, dict]:
        return 200, self.store.get(route.info.kind, _ns(route), route.name or "")

    async def list(self, route: Route, request: Request) -> tuple[int, dict | RawJson]:
        if tables.wanted(request.headers.get("accept")):
            return 200, self._list_body(route, request)
        # Plain JSON: sent from the store's cached JSON of each object, copied and encoded
        # by no one (a list of 10,000 pods is a join, not 10,000 copies and an encode).
        selector = _selector(request)
        field_name = _field_name(request)
        pairs = self.store.list_encoded(route.info.kind, route.namespace,
                                        selector.matches if selector else None)
        if field_name is not None:
            pairs = [p for p in pairs if p[0]["metadata"].get("name") == field_name]
        encoded = {id(obj): data for obj, data in pairs}
        served, more = paging.page([obj for obj, _ in pairs], request.query,
                                   self.store.resource_version)
        head = json.dumps({
            "apiVersion": route.info.api_version,
            "kind": f"{route.info.kind}List",
            "metadata": {"resourceVersion": str(self.store.resource_version), **more},
        })
        return 200, RawJson(head[:-1].encode() + b',"items":['
                            + b",".join(encoded[id(obj)] for obj in served) + b"]}")

    def _list_body(self, route: Route, request: Request) -> dict:
        selector = _selector(request)
        field_name = _field_name(request)  # refuses unsupported field selectors
        items = self.store.list(route.info.kind, route.namespace,
                                selector.matches if selector else None)
        if field_name is not None:
            items = [obj for obj in items if obj["metadata"].get("name") == field_name]
        items, more = paging.page(items, request.query, self.store.resource_version)
        return {
            "apiVersion": route.info.api_version,
            "kind": f"{route.info.kind}List",
            "metadata": {"resourceVersion": str(self.store.resource_version), **more},
            "items": items,
        }

    async def watch(self, route: Route, request: Request, send: Send, receive: Receive) -> None:
        selector = _selector(request)
        field_name = _field_name(request)
        since_text = request.query.get("resourceVersion")
        try:
            since = int(since_text) if since_text not in (None, "", "0") else None
        except ValueError:
            raise BadRequest(f"resourceVersion: invalid value {since_text!r}") from None
        options = watchopts.Options(request.query, request.headers.get("accept"))
        if options.initial_events:  # watch-list: the current state first, whatever the version
            since = None
        if since is not None and since > self.store.resource_version and not (
                await self.store.wait_for_resource_version(since, FUTURE_RV_WAIT_SECONDS)):
            raise ApiError(f"Too large resource version: {since}, current: "
                           f"{self.store.resource_version}", code=504, reason="Timeout",
                           details={"causes": [{"reason": "ResourceVersionTooLarge",
                                                "message": "Too large resource version"}],
                                    "retryAfterSeconds": 1})
        watch = self.store.watch(route.info.kind, route.namespace, since)
        # Like Kubernetes: a watch without a version starts with the current objects.
        initial = self.store.list(route.info.kind, route.namespace) if since is None else None
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"transfer-encoding", b"chunked")]})

        async def stream(cancel: trio.CancelScope) -> None:
            await watchopts.stream(
                send, watch, options, kind=route.info.kind, api_version=route.info.api_version,
                initial=initial, wanted=lambda obj: _wanted(obj, selector, field_name),
                current_rv=lambda: self.store.resource_version)
            cancel.cancel()

        await _until_disconnect(receive, stream)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _list_events(self, route: Route, request: Request) -> dict:
        wanted: dict[str, str] = {}
        for term in filter(None, request.query.get("fieldSelector", "").split(",")):
            key, _, value = term.partition("=")
            wanted[key.strip()] = value.strip()
        items = self.store.events(
            namespace=route.namespace,
            involved_uid=wanted.get("involvedObject.uid"),
            involved_name=wanted.get("involvedObject.name"),
            involved_kind=wanted.get("involvedObject.kind"),
        )
        return {"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": items}

    async def _record_posted_event(self, route: Route, request: Request) -> dict:
        """An agent's kubelet reports an event; the store counts it into its series."""
        body = request.json()
        involved, type_, reason, message, component, host = events.admitted(body, _ns(route))
        if dryrun.requested(request.query):
            return body
        await self.store.record_event(involved, type_, reason, message, source=component,
                                      host=host)
        return body

    # ---- writes --------------------------------------------------------------------------

    async def create(self, route: Route, request: Request) -> tuple[int, dict]:
        obj = _checked_body(request.json(), route)
        if _truthy(request.query.get("apply")):
            return await self.apply(route, obj)
        admitted = _admit_new(obj)
        meta = admitted["metadata"]
        if meta.get("name") or not meta.get("generateName"):
            return 201, await self._store_new(admitted)
        # generateName as Kubernetes does: the name is drawn before validation (which
        # checked the prefix) and redrawn when taken.
        for _ in range(GENERATE_NAME_ATTEMPTS):
            meta["name"] = names.generate_name(meta["generateName"])
            _raise_if_invalid(admitted, validation.validate(admitted))
            try:
                return 201, await self._store_new(admitted)
            except AlreadyExists:
                continue
        raise AlreadyExists(f"no free name with prefix {meta['generateName']!r} after "
                            f"{GENERATE_NAME_ATTEMPTS} attempts; try again", code=409)

    async def apply(self, route: Route, manifest: dict) -> tuple[int, dict]:
        """Create-or-update with a manifest, as `kubectl apply` means it.

        The manifest's spec (after defaults) replaces the stored one, except top-level spec
        fields that neither it nor the previous apply set (e.g. `rollout pause`): those stay.
        Its labels and annotations are set, and those a previous apply set but this manifest
        dropped are removed (kubectl's last-applied-configuration), while keys that
        controllers added stay.
        Status and system fields stay. 201 created, 200 configured; an unchanged object keeps
        its resourceVersion, which is how the client tells "unchanged" apart.
        """
        name = manifest["metadata"].get("name")
        if not name:  # kubectl refuses generateName with apply: nothing to find the object by
            raise Invalid.for_object(manifest, [FieldError.required(
                "metadata.name", "apply needs a name (generateName is only for create)")])
        manifest["metadata"].setdefault("annotations", {})[LAST_APPLIED] = json.dumps(
            _without_last_applied(manifest), sort_keys=True, separators=(",", ":"))
        # The manifest as a whole must be valid, not just the parts merged below.
        admitted = _admit_new(manifest)
        current = self.store.try_get(route.info.kind, _ns(route), name)
        if current is None:
            return 201, await self._store_new(admitted)
        previous = _last_applied(current)
        # Top-level spec fields that neither this manifest nor the last one set were set by
        # someone else (`rollout pause`, `scale`): keep them, as kubectl's 3-way merge does.
        desired = copy.deepcopy(manifest)
        applied_spec = _last_applied(current, "spec")
        for key, value in (current.get("spec") or {}).items():
            if key not in (desired.get("spec") or {}) and key not in applied_spec:
                desired.setdefault("spec", {})[key] = value
        desired = defaults.apply_defaults(desired)
        new = copy.deepcopy(current)
        for key in ("labels", "annotations"):
            merged = dict(new["metadata"].get(key) or {})
            for dropped in set(previous.get(key) or {}) - set(desired["metadata"].get(key) or {}):
                merged.pop(dropped, None)
            merged.update(desired["metadata"].get(key) or {})
            new["metadata"][key] = merged
        content = schema.CONTENT_FIELDS.get(route.info.kind)
        if content is None:
            new["spec"] = desired.get("spec", {})
        else:  # ConfigMap, Secret: the content is top-level, replaced as a whole
            for key in content:
                if desired.get(key) is not None:
                    new[key] = desired[key]
                else:
                    new.pop(key, None)
        keep_allocated(current, new)
        _raise_if_invalid(new, validation.validate(new) + validation.validate_update(current, new))
        return 200, await self.store.update(new, durable=True)

    async def replace(self, route: Route, request: Request) -> tuple[int, dict]:
        obj = _checked_body(request.json(), route, name=route.name)
        return 200, await self._update(route, obj)

    async def patch(self, route: Route, request: Request) -> tuple[int, dict]:
        if patching.media_type(request.headers.get("content-type")) == patching.APPLY:
            return await self._server_side_apply(route, request)
        current = self.store.get(route.info.kind, _ns(route), route.name or "")
        patched = _patched(current, request, route)
        if not isinstance(patched, dict):
            raise BadRequest("a merge patch must be a JSON object")
        patched = _checked_body(patched, route, name=route.name)
        return 200, await self._update(route, patched)

    async def _server_side_apply(self, route: Route, request: Request) -> tuple[int, dict]:
        manager = ssa.field_manager(request.query)
        current = self.store.try_get(route.info.kind, _ns(route), route.name or "")
        obj = ssa.apply(current, request.json(), manager=manager, kind=route.info.kind,
                        force=_truthy(request.query.get("force")))
        obj = _checked_body(obj, route, name=route.name)
        if current is None:
            return 201, await self._store_new(_admit_new(obj))
        return 200, await self._update(route, obj)

    async def _update(self, route: Route, obj: dict) -> dict:
        current = self.store.get(route.info.kind, _ns(route), route.name or "")
        obj = defaults.apply_defaults(obj)
        keep_allocated(current, obj)
        _raise_if_invalid(obj, validation.validate(obj) + validation.validate_update(current, obj))
        return await self.store.update(obj, durable=True)

    async def _store_new(self, obj: dict) -> dict:
        """Create an admitted object; a Service gets its clusterIP and nodePorts first."""
        async def create(new: dict) -> dict:
            return await self.store.create(new, durable=True)

        if obj.get("kind") == "Service":
            return await self.services.create(obj, create)
        return await create(obj)

    async def replace_status(self, route: Route, request: Request) -> tuple[int, dict]:
        obj = _checked_body(request.json(), route, name=route.name, user_kind=False)
        return 200, await self._update_status(route, obj)

    async def patch_status(self, route: Route, request: Request) -> tuple[int, dict]:
        current = self.store.get(route.info.kind, _ns(route), route.name or "")
        patched = _patched(current, request, route)
        if not isinstance(patched, dict):
            raise BadRequest("a merge patch must be a JSON object")
        patched = _checked_body(patched, route, name=route.name, user_kind=False)
        return 200, await self._update_status(route, patched)

    async def _update_status(self, route: Route, obj: dict) -> dict:
        """Only status changes (the /status subresource); it is checked like a spec write.
        Identity comes from the path and the stored object, never from the body."""
        current = self.store.get(route.info.kind, _ns(route), route.name or "")
        status = obj.get("status")
        _raise_if_invalid(current, validation.validate_status(route.info.kind, status))
        new = copy.deepcopy(current)
        new["status"] = status if status is not None else {}
        meta = obj.get("metadata") or {}
        for field_name in ("uid", "resourceVersion"):  # preconditions the body may carry
            if meta.get(field_name):
                new["metadata"][field_name] = meta[field_name]
        return await self.store.update_status(new, durable=True)

    async def bind(self, route: Route, request: Request) -> tuple[int, dict]:
        """`pods/binding`: set spec.nodeName once (tinykube/api/binding.py)."""
        pod = self.store.get("Pod", _ns(route), route.name or "")
        new = binding.bound(pod, request.json())
        await self.store.update(new, durable=True)
        return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                     "status": "Success", "code": 201}

    async def delete(self, route: Route, request: Request) -> tuple[int, dict]:
        options = request.json() if request.body else {}
        if not isinstance(options, dict):
            raise BadRequest("delete options must be a JSON object")
        propagation = request.query.get("propagationPolicy") or options.get("propagationPolicy")
        if propagation not in (None, "Background", "Foreground", "Orphan"):
            raise BadRequest(f"propagationPolicy: Unsupported value: {propagation!r}: supported "
                             "values: \"Background\", \"Foreground\", \"Orphan\"")
        grace_text = request.query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
        grace = None
        if grace_text not in (None, ""):
            try:
                grace = int(grace_text)
            except (TypeError, ValueError):
                raise BadRequest(f"gracePeriodSeconds: invalid value {grace_text!r}") from None
            if grace < 0:
                raise BadRequest("gracePeriodSeconds: must be greater than or equal to 0")
        preconditions = options.get("preconditions") or {}
        uid = preconditions.get("uid") if isinstance(preconditions, dict) else None
        obj = await self.store.delete(route.info.kind, _ns(route), route.name or "",
                                      grace_period=grace, propagation=propagation,
                                      uid=uid or None, durable=True)
        return 200, obj

    async def delete_collection(self, route: Route, request: Request) -> tuple[int, dict]:
        """DELETE on a collection (deletecollection): each object the selectors match."""
        listed = self._list_body(route, request)
        deleted = []
        for obj in listed["items"]:
            meta = obj["metadata"]
            try:
                _, gone = await self.delete(Route(route.info, meta["namespace"], meta["name"],
                                                  None), request)
            except NotFound:  # deleted meanwhile (the garbage collector)
                continue
            deleted.append(gone)
        return 200, {**listed, "items": deleted}

    # ---- scale ---------------------------------------------------------------------------

    async def get_scale(self, route: Route, request: Request) -> tuple[int, dict]:
        return 200, _scale_of(self.store.get(route.info.kind, _ns(route), route.name or ""))

    async def replace_scale(self, route: Route, request: Request) -> tuple[int, dict]:
        return await self._set_replicas(route, request.json())

    async def patch_scale(self, route: Route, request: Request) -> tuple[int, dict]:
        current = _scale_of(self.store.get(route.info.kind, _ns(route), route.name or ""))
        return await self._set_replicas(route, _patched(current, request, None))

    async def _set_replicas(self, route: Route, scale: Any) -> tuple[int, dict]:
        if not isinstance(scale, dict):
            raise BadRequest("a Scale must be a JSON object")
        spec = scale.get("spec")
        obj = self.store.get(route.info.kind, _ns(route), route.name or "")
        if spec is not None and not isinstance(spec, dict):
            raise Invalid.for_object(obj, [FieldError.invalid("spec", spec, "must be an object")])
        replicas = (spec or {}).get("replicas")
        if replicas is None:  # validation allows an absent spec.replicas; a scale does not
            raise Invalid.for_object(obj, [FieldError("spec.replicas", "Required value")])
        obj["spec"]["replicas"] = replicas
        _raise_if_invalid(obj, validation.validate(obj))
        return 200, _scale_of(await self.store.update(obj, durable=True))

    # ---- logs and exec (served by the node) ----------------------------------------------

    async def logs(self, route: Route, request: Request, send: Send, receive: Receive) -> None:
        pod = self.store.get("Pod", _ns(route), route.name or "")
        container = _container_name(pod, request.query.get("container"))
        previous = _truthy(request.query.get("previous"))
        follow = _truthy(request.query.get("follow"))
        text = request.query.get("tailLines")
        _check_tail_lines(text)  # before the 200 goes out: a bad value is a 400, not an empty log
        tail = int(text) if text not in (None, "") else None
        if self.proxy is not None:
            await self.proxy.forward_http(pod, "GET", request.path, request.query, b"", send,
                                          receive)
            return
        node = self._node()
        path = node.log_path(pod, container, previous)
        if path is None:
            which = "previous terminated container" if previous else "container"
            raise BadRequest(f'{which} "{container}" in pod "{pod["metadata"]["name"]}" '
                             "has no logs yet")
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})

        async def stream(cancel: trio.CancelScope) -> None:
            await _stream_log(send, path, tail, follow, lambda: self._next_log(pod, container))
            cancel.cancel()

        await _until_disconnect(receive, stream)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _next_log(self, pod: dict, container: str) -> Path | None:
        """The current log file of the container, which moves on when it restarts."""
        meta = pod["metadata"]
        current = self.store.try_get("Pod", meta["namespace"], meta["name"])
        if current is None or current["metadata"]["uid"] != meta["uid"]:
            return None
        return self._node().log_path(current, container, False)

    async def exec(self, route: Route, request: Request, send: Send, receive: Receive) -> None:
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("command"), list) or not all(
                isinstance(a, str) for a in body["command"]) or not body["command"]:
            raise BadRequest("command: must be a non-empty list of strings")
        pod = self.store.get("Pod", _ns(route), route.name or "")
        container = _container_name(pod, body.get("container"))
        if self.proxy is not None:
            await self.proxy.forward_http(pod, "POST", request.path, request.query,
                                          request.body, send, receive)
            return
        process = await self._node().exec_in_pod(pod["metadata"]["namespace"],
                                                 pod["metadata"]["name"], container,
                                                 body["command"])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})

        async def stream(cancel: trio.CancelScope) -> None:
            async def pump(stream_name: str, pipe: Any) -> None:
                async for chunk in pipe:
                    await _send_line(send, {"stream": stream_name,
                                            "data": chunk.decode("utf-8", "replace")})

            async with trio.open_nursery() as nursery:
                nursery.start_soon(pump, "stdout", process.stdout)
                nursery.start_soon(pump, "stderr", process.stderr)
            code = await process.wait()
            await _send_line(send, {"exitCode": code if code >= 0 else 128 - code})
            cancel.cancel()

        try:
            await _until_disconnect(receive, stream)
        finally:
            if process.returncode is None:
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _exec_pod(self, path: str) -> dict:
        route = _route(path)
        if route.subresource != "exec" or route.info.kind != "Pod":
            raise NotFound(f"the server could not find the requested resource ({path})")
        return self.store.get("Pod", _ns(route), route.name or "")

    async def _start_exec(self, path: str, container: str | None,
                          command: builtins.list[str]) -> trio.Process:
        pod = self._exec_pod(path)
        return await self._node().exec_in_pod(pod["metadata"]["namespace"],
                                              pod["metadata"]["name"],
                                              _container_name(pod, container), command)

    def _node(self) -> Node:
        if self.node is None:
            raise ApiError("this server runs no node", code=503, reason="ServiceUnavailable")
        return self.node


# ---- helpers ------------------------------------------------------------------------------


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _without_last_applied(manifest: dict) -> dict:
    clean = copy.deepcopy(manifest)
    annotations = clean["metadata"].get("annotations") or {}
    annotations.pop(LAST_APPLIED, None)
    if not annotations:
        clean["metadata"].pop("annotations", None)
    return clean


def _last_applied(obj: dict, part: str = "metadata") -> dict:
    """`part` of the manifest last applied to obj ({} if none or unreadable)."""
    text = (obj["metadata"].get("annotations") or {}).get(LAST_APPLIED)
    try:
        applied = json.loads(text) if text else {}
    except ValueError:
        return {}
    found = applied.get(part) if isinstance(applied, dict) else None
    return found if isinstance(found, dict) else {}


def _as_table_if_asked(route: Route, request: Request, body: dict | RawJson
                       ) -> dict | RawJson:
    if isinstance(body, RawJson):  # plain JSON was asked for, and is made already
        return body
    if request.method == "GET" and route.subresource is None and tables.wanted(
            request.headers.get("accept")):
        return tables.of_response(route.info.kind, body, request.query.get("includeObject"))
    return body


def _patched(current: dict, request: Request, route: Route | None) -> Any:
    """`current` patched by the request, by its Content-Type (415 for unknown types)."""
    content_type = request.headers.get("content-type")
    if patching.media_type(content_type) not in ("", *patching.SUPPORTED):
        raise patching.unsupported(patching.media_type(content_type))
    node = schema.SCHEMAS.get(route.info.kind) if route is not None else None
    return patching.apply_patch(current, content_type, request.json(), node)


_GROUPS = frozenset(info.group for info in KINDS if info.group)  # apps, discovery.k8s.io


def _route(path: str) -> Route:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis" and parts[2] == "v1" and parts[1] in _GROUPS:
        group, rest = parts[1], parts[3:]
    else:
        raise NotFound(f"the server could not find the requested resource ({path})")
    namespace = None
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        raise NotFound(f"the server could not find the requested resource ({path})")
    try:
        info = by_plural(group, rest[0])
    except UnknownKind:
        raise NotFound(f"the server doesn't have a resource type \"{rest[0]}\"") from None
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    if subresource not in (None, "status", "scale", "log", "exec", "binding"):
        raise NotFound(f"the server could not find the requested resource ({path})")
    if name is not None and namespace is None and info.namespaced:
        raise NotFound(f"the server could not find the requested resource ({path})")
    return Route(info, namespace, name, subresource)


def _ns(route: Route) -> str:
    return route.namespace or "default"


def _checked_body(obj: Any, route: Route, *, name: str | None = None,
                  user_kind: bool = True) -> dict:
    """The body names the kind and namespace of its path, or the request is refused."""
    if not isinstance(obj, dict):
        raise BadRequest("the request body must be a JSON object")
    kind = obj.get("kind")
    if kind != route.info.kind:
        raise BadRequest(f"kind: the body's kind {kind!r} does not match the path "
                         f"({route.info.kind})")
    if user_kind and not route.info.user:
        raise BadRequest(f"{kind} objects are written by tinykube itself")
    api_version = obj.get("apiVersion")
    if api_version != route.info.api_version:
        raise BadRequest(f"apiVersion: {api_version!r} does not match the path "
                         f"({route.info.api_version})")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise Invalid.for_object(obj, [FieldError("metadata", "Required value")])
    namespace = meta.get("namespace")
    if namespace is None:
        meta["namespace"] = _ns(route)
    elif namespace != _ns(route):
        raise BadRequest(f"metadata.namespace: the namespace of the object ({namespace}) does "
                         f"not match the namespace on the request ({_ns(route)})")
    if name is not None and meta.get("name") != name:
        raise BadRequest(f"metadata.name: the name of the object ({meta.get('name')}) does not "
                         f"match the name on the URL ({name})")
    if user_kind:
        fieldvalidation.check(obj)  # fieldValidation=Strict|Warn|Ignore
    return obj


def _admit_new(obj: dict) -> dict:
    obj = defaults.apply_defaults(copy.deepcopy(obj))
    _raise_if_invalid(obj, validation.validate(obj))
    return obj


def _raise_if_invalid(obj: dict, errors: list[FieldError]) -> None:
    if errors:
        raise Invalid.for_object(obj, errors)


def _scale_of(obj: dict) -> dict:
    meta = obj["metadata"]
    selector = obj.get("spec", {}).get("selector") or {}
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                           "creationTimestamp") if k in meta},
        "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
        "status": {"replicas": obj.get("status", {}).get("replicas", 0),
                   "selector": str(_selector_of(obj["kind"], selector)) if selector else ""},
    }


def _selector_of(kind: str, selector: dict) -> labels.Selector:
    if kind == "ReplicationController":
        return labels.from_map(selector)
    return labels.from_label_selector(selector)


def _selector(request: Request) -> labels.Selector | None:
    text = request.query.get("labelSelector")
    if not text:
        return None
    try:
        return labels.parse(text)
    except ValueError as e:
        raise BadRequest(f"labelSelector: {e}") from None


def _field_name(request: Request) -> str | None:
    text = request.query.get("fieldSelector", "")
    if not text:
        return None
    key, _, value = text.partition("=")
    if key.strip() != "metadata.name":
        raise BadRequest(f"fieldSelector: only metadata.name is supported, not {key!r}")
    return value.lstrip("=").strip()


def _wanted(obj: dict, selector: labels.Selector | None, name: str | None) -> bool:
    meta = obj["metadata"]
    if name is not None and meta.get("name") != name:
        return False
    return selector is None or selector.matches(meta.get("labels") or {})


def _container_name(pod: dict, requested: str | None) -> str:
    names = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
    init_names = [c["name"] for c in pod.get("spec", {}).get("initContainers") or []]
    if requested:
        if requested not in names and requested not in init_names:
            raise BadRequest(f'container {requested} is not valid for pod '
                             f'{pod["metadata"]["name"]}')
        return requested
    if len(names) != 1:
        inits = f' or one of the init containers: [{" ".join(init_names)}]' if init_names else ""
        raise BadRequest(f'a container name must be specified for pod {pod["metadata"]["name"]},'
                         f' choose one of: [{" ".join(names)}]{inits}')
    return names[0]


def _check_tail_lines(text: str | None) -> None:
    if text in (None, ""):
        return
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"tailLines: Invalid value: {text!r}: must be an integer") from None
    if value < 0:
        raise BadRequest(f"tailLines: Invalid value: {value}: must be greater than or equal "
                         "to 0")


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object hook: a key given twice is an error (the YAML loader refuses it too),
    not "the last one wins"."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(key)
        obj[key] = value
    return obj


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def _depth(value: Any) -> int:
    """Nesting depth without recursion (a hostile body must not exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            return depth
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


async def _read_request(scope: Scope, receive: Receive) -> Request:
    query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1"),
                                             keep_blank_values=True).items()}
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    request = Request(scope["method"], scope["path"], query, headers)
    if scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise ApiError(f"request body is larger than {MAX_BODY_BYTES} bytes", code=413,
                               reason="RequestEntityTooLarge")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        request.body = b"".join(chunks)
    return request


class _ClientGone(ApiError):
    """The client went away mid-request; nothing was done and nothing can be answered."""

    code = 499
    reason = "ClientClosedRequest"

    def __init__(self) -> None:
        super().__init__("client disconnected")


async def _until_disconnect(receive: Receive,
                            work: Callable[[trio.CancelScope], Awaitable[None]]) -> None:
    """Run a streaming response until it ends or the client disconnects."""
    async with trio.open_nursery() as nursery:
        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch_disconnect)
        await work(nursery.cancel_scope)


async def _stream_log(send: Send, path: Path, tail: int | None, follow: bool,
                      current: Callable[[], Path | None]) -> None:
    """The log (across rotations, off the event loop, in bounded chunks: runtime/logfiles)."""
    from tinykube.runtime import logfiles

    async def send_chunk(data: bytes) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": True})

    await logfiles.stream(send_chunk, path, tail=tail, follow=follow, latest=current)


class RawJson:
    """A response body encoded already (a list sent from the store's cached JSON)."""

    def __init__(self, data: bytes) -> None:
        self.data = data


async def _send_json(send: Send, code: int, body: dict | RawJson, *,
                     warnings: Sequence[str] = ()) -> None:
    if isinstance(body, RawJson):
        data = body.data
        body = {}
    else:
        data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(data)).encode())]
    # RFC 7234 warn-code 299 ("miscellaneous persistent warning"), as the Kubernetes API uses.
    headers += [(b"warning", f'299 - "{_quoted(text)}"'.encode()) for text in warnings]
    if code == 504 and body.get("details", {}).get("retryAfterSeconds"):
        headers.append((b"retry-after", str(body["details"]["retryAfterSeconds"]).encode()))
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def _quoted(text: str) -> str:
    """The inside of an HTTP quoted-string (a Warning header's text)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


async def _send_line(send: Send, body: dict) -> None:
    await send({"type": "http.response.body", "body": json.dumps(body).encode() + b"\n",
                "more_body": True})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def serve(app: ApiServer, socket_path: Path, *, task_status: Any = trio.TASK_STATUS_IGNORED
                ) -> None:
    """Serve on a root-only unix socket until cancelled."""
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    socket_path.parent.mkdir(parents=True, exist_ok=True)
    if socket_path.exists() or socket_path.is_symlink():
        socket_path.unlink()
    config = Config()
    config.bind = [f"unix:{socket_path}"]
    config.umask = 0o177  # socket mode 0600: the API is root's only
    config.accesslog = None
    config.errorlog = logging.getLogger("tinykube.http")
    config.keep_alive_timeout = 30
    config.graceful_timeout = 1
    config.h11_max_incomplete_size = 64 * 1024
    await hypercorn_serve(app, config, task_status=task_status, mode="asgi")  # type: ignore[arg-type]
    if socket_path.exists():
        os.unlink(socket_path)
