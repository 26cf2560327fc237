"""`TinyKube`: what a test gets from the `tinykube` fixture, a running daemon and the verbs to
drive it (apply, wait, get, delete, logs, exec, pod_ip, http_get, events, describe, client).

Every call opens its own connection to the daemon's socket, so the async variants (`.aio`,
each call run in a worker thread) can run side by side. Blocking calls take a `timeout`.
"""

from __future__ import annotations

import builtins
import copy
import functools
import http.client
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from .daemon import Daemon, wait_for
from .readiness import has_condition, is_ready, why_not_ready

from tinykube.client import Client, object_path
from tinykube.model import defaults, validation
from tinykube.model.errors import ApiError, Invalid, NotFound
from tinykube.model.kinds import KINDS, KindInfo, by_kind, lookup
from tinykube.model.manifests import load_manifests

# A manifest: a file or directory path, YAML text, one object, or several of those.
Manifest = str | Path | Mapping[str, Any] | Iterable[Mapping[str, Any]]

# What a failure report describes and a test may leave behind: everything users create.
REPORTED_KINDS = tuple(k for k in KINDS if k.workload or k.kind == "Pod")


class ExecResult(NamedTuple):
    exit_code: int
    # stdout and stderr as the daemon read them: two pipes, so lines written to both at
    # nearly the same time may come in either order
    output: str


class HttpResponse(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class TinyKube:
    def __init__(self, daemon: Daemon, namespace: str = "default") -> None:
        self.daemon = daemon
        self.namespace = namespace
        self._kubeconfig: Path | None = None

    # ---- objects ----------------------------------------------------------------------------

    def apply(self, manifest: Manifest, namespace: str | None = None) -> list[dict]:
        """Create or update the objects (validated locally first, as `tinykube apply`: a bad
        document changes nothing). Returns the objects as the daemon stored them."""
        documents = _documents(manifest)
        if not documents:
            raise ValueError("apply: the manifest holds no objects")
        for doc in documents:
            meta = doc.setdefault("metadata", {})
            if isinstance(meta, dict):
                meta.setdefault("namespace", namespace or self.namespace)
        problems = [Invalid.for_object(doc, errors).message for doc in documents
                    if (errors := validation.validate(defaults.apply_defaults(
                        copy.deepcopy(doc))))]
        if problems:
            raise ApiError("\n".join(problems), code=422, reason="Invalid")
        with self._client() as client:
            return [client.apply(doc)[1] for doc in documents]

    def get(self, target: str, name: str | None = None, namespace: str | None = None,
            selector: str | None = None) -> Any:
        """`get("pod/web-0")` or `get("pod", "web-0")`: the object; `get("pods")`: a list
        (`selector="app=web"` filters by labels; namespace "*" lists every namespace)."""
        info, name = _target(target, name)
        with self._client() as client:
            if name is None:
                return client.list(info, namespace or self.namespace, selector)
            return client.get(info, name, namespace or self.namespace)

    def delete(self, target: str, name: str | None = None, namespace: str | None = None,
               wait: bool = True, timeout: float = 60, cascade: str | None = None) -> None:
        """Delete an object (a missing one is fine). With `wait` (the default) the deletion
        is Foreground and returns once the object and its dependents (a Deployment's
        ReplicaSets and pods) are gone, so the next test starts clean; `cascade` is the
        propagationPolicy (Foreground, Background, Orphan) to use instead."""
        info, name = _target(target, name)
        if name is None:
            raise ValueError(f"delete needs KIND/NAME, got {target!r}")
        ns = namespace or self.namespace
        with self._client() as client:
            try:
                client.delete(info, name, ns,
                              propagation=cascade or ("Foreground" if wait else None))
            except NotFound:
                return
        if wait:
            self.wait(f"{info.kind}/{name}", for_="delete", timeout=timeout, namespace=ns)

    def wait(self, target: str, for_: str = "condition=Ready", timeout: float = 60,
             namespace: str | None = None) -> dict | None:
        """Wait for `condition=NAME[=VALUE]` or `delete`, as `kubectl wait --for`. For
        condition=Ready a Deployment or StatefulSet waits for its rollout, a ReplicaSet for
        its replicas (tinykube.testing.readiness). Returns the object (None for delete);
        AssertionError with the object's state on timeout."""
        info, name = _target(target)
        if name is None:
            raise ValueError(f"wait needs KIND/NAME, got {target!r}")
        ns = namespace or self.namespace
        label = f"{info.kind}/{name}"
        last: dict[str, Any] = {}

        def fetch() -> dict | None:
            with self._client() as client:
                try:
                    return client.get(info, name, ns)
                except NotFound:
                    return None

        if for_ == "delete":
            wait_for(lambda: fetch() is None, timeout=timeout, interval=0.2,
                     what=f"{label} deleted")
            return None
        if not for_.startswith("condition="):
            raise ValueError(f'for_ must be "condition=NAME[=VALUE]" or "delete", got {for_!r}')
        cond, _, value = for_[len("condition="):].partition("=")

        def met() -> dict | None:
            obj = fetch()
            if obj is None:
                return None
            last["obj"] = obj
            if cond.lower() == "ready" and value in ("", "True", "true"):
                return obj if is_ready(obj) else None
            return obj if has_condition(obj, cond, value or "True") else None

        try:
            return wait_for(met, timeout=timeout, interval=0.2, what=f"{label} {for_}")
        except AssertionError:
            state = why_not_ready(last["obj"]) if "obj" in last else "not found"
            raise AssertionError(f"timed out after {timeout}s waiting for {label} {for_}: "
                                 f"{state}") from None

    def describe(self, target: str, name: str | None = None,
                 namespace: str | None = None) -> str:
        info, name = _target(target, name)
        if name is None:
            raise ValueError(f"describe needs KIND/NAME, got {target!r}")
        result = self.daemon.cli("describe", info.plural, name, "-n",
                                 namespace or self.namespace, check=False)
        return result.stdout + result.stderr

    def events(self, namespace: str | None = "*") -> list[dict]:
        """Events, oldest first (every namespace by default)."""
        with self._client() as client:
            items = client.list(by_kind("Event"), namespace)
        return sorted(items, key=_event_time)

    # ---- pods -------------------------------------------------------------------------------

    def logs(self, pod: str, container: str | None = None, namespace: str | None = None,
             previous: bool = False) -> str:
        params = {"container": container} if container else {}
        if previous:
            params["previous"] = "true"
        path = object_path(by_kind("Pod"), namespace or self.namespace, _pod(pod), "log")
        with self._client() as client:
            return b"".join(client.stream("GET", path, params=params)).decode("utf-8", "replace")

    def exec(self, pod: str, cmd: str | builtins.list[str], container: str | None = None,
             namespace: str | None = None) -> ExecResult:
        """Run `cmd` (a list, or a string for `sh -c`) in the pod's container."""
        command = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        body: dict[str, Any] = {"command": command}
        if container:
            body["container"] = container
        path = object_path(by_kind("Pod"), namespace or self.namespace, _pod(pod), "exec")
        code, output = 1, []
        with self._client() as client:
            for message in client.stream_lines("POST", path, body=body):
                if "exitCode" in message:
                    code = int(message["exitCode"])
                else:
                    output.append(message.get("data", ""))
        return ExecResult(code, "".join(output))

    def pod_ip(self, pod: str, namespace: str | None = None) -> str:
        obj = self.get("Pod", _pod(pod), namespace)
        ip = (obj.get("status") or {}).get("podIP")
        if not ip:
            raise AssertionError(f"pod {_pod(pod)} has no IP yet (phase "
                                 f"{(obj.get('status') or {}).get('phase')})")
        return str(ip)

    def http_get(self, pod: str, port: int, path: str = "/", timeout: float = 10,
                 namespace: str | None = None) -> HttpResponse:
        """GET http://<pod IP>:<port><path> from the host, straight into the pod network
        (never through a proxy: the pod network is on this machine)."""
        conn = http.client.HTTPConnection(self.pod_ip(pod, namespace), port, timeout=timeout)
        try:
            conn.request("GET", path if path.startswith("/") else "/" + path)
            response = conn.getresponse()
            return HttpResponse(response.status, dict(response.getheaders()), response.read())
        finally:
            conn.close()

    # ---- the official Kubernetes client -------------------------------------------------------

    @functools.cached_property
    def client(self) -> Any:
        """A `kubernetes.client.ApiClient` for the daemon's TLS listener (the kubeconfig of
        `tinykube kubeconfig`): `kubernetes.client.CoreV1Api(tinykube.client)`."""
        try:
            from kubernetes import config
        except ImportError:
            raise ImportError("TinyKube.client needs the official Kubernetes client: "
                              "pip install kubernetes") from None
        return config.new_client_from_config(str(self.kubeconfig))

    @property
    def kubeconfig(self) -> Path:
        """An admin kubeconfig file for kubectl and the Kubernetes clients."""
        if self._kubeconfig is None:
            path = self.daemon.run_dir.parent / "kubeconfig"
            path.write_text(self.daemon.cli("kubeconfig").stdout)
            self._kubeconfig = path
        return self._kubeconfig

    # ---- async ------------------------------------------------------------------------------

    @functools.cached_property
    def aio(self) -> AsyncTinyKube:
        """The same verbs as coroutines, for pytest-trio and anyio/asyncio tests:
        `await tinykube.aio.wait("deployment/web")`."""
        return AsyncTinyKube(self)

    # ---- reports and housekeeping -------------------------------------------------------------

    def not_ready(self) -> builtins.list[dict]:
        """Every pod and workload (all namespaces) that is not Ready."""
        found = []
        with self._client() as client:
            for info in REPORTED_KINDS:
                found += [obj for obj in client.list(info, "*") if not is_ready(obj)]
        return found

    def failure_report(self, log_lines: int = 60, event_count: int = 30
                       ) -> builtins.list[tuple[str, str]]:
        """(title, text) sections for a failed test's report: the daemon log's tail, `describe`
        of every non-Ready object, recent events. Never raises (the daemon may be the
        problem)."""
        sections = []
        try:
            lines = self.daemon.log_path.read_text(errors="replace").splitlines()
            sections.append(("tinykube daemon log (last lines)", "\n".join(lines[-log_lines:])))
        except OSError as e:
            sections.append(("tinykube daemon log", f"unreadable: {e}"))
        try:
            described = [self.describe(obj["kind"], obj["metadata"]["name"],
                                       obj["metadata"]["namespace"]) for obj in self.not_ready()]
            sections.append(("tinykube not Ready objects",
                             "\n".join(described) or "every pod and workload is Ready"))
            events = self.events()[-event_count:]
            sections.append(("tinykube recent events", "\n".join(_event_line(e) for e in events)
                             or "no events"))
        except Exception as e:  # noqa: BLE001 - a report must not hide the test's own failure
            sections.append(("tinykube state", f"could not be read: {e!r}"))
        return sections

    def delete_all(self, timeout: float = 60) -> None:
        """Delete every workload and pod in every namespace and wait until the pods are gone
        (between tests sharing one daemon)."""
        with self._client() as client:
            for info in reversed(REPORTED_KINDS):  # owners first: no replacement pods
                for obj in client.list(info, "*"):
                    try:
                        client.delete(info, obj["metadata"]["name"], obj["metadata"]["namespace"])
                    except NotFound:
                        pass
        wait_for(lambda: not self.get("Pod", namespace="*"), timeout=timeout,
                 what="all pods deleted")

    def _client(self) -> Client:
        return Client(self.daemon.socket)


class AsyncTinyKube:
    """TinyKube's verbs as coroutines: each call runs in a worker thread of whichever async
    library runs the test (trio, or asyncio, e.g. under anyio), so the event loop keeps
    running while a call waits."""

    def __init__(self, sync: TinyKube) -> None:
        self.sync = sync

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.sync, name)
        if not callable(method):
            raise AttributeError(name)

        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await _to_thread(functools.partial(method, *args, **kwargs))
        return call


async def _to_thread(fn: Callable[[], Any]) -> Any:
    import sniffio

    if sniffio.current_async_library() == "trio":
        import trio

        return await trio.to_thread.run_sync(fn)
    import asyncio

    return await asyncio.to_thread(fn)


def _documents(manifest: Manifest) -> list[dict]:
    if isinstance(manifest, Path) or (isinstance(manifest, str) and "\n" not in manifest
                                      and ":" not in manifest):
        path = Path(manifest)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
            return [doc for f in files for doc in load_manifests(f.read_text(), str(f))]
        if not path.exists():
            raise FileNotFoundError(f"manifest {path} does not exist")
        return load_manifests(path.read_text(), str(path))
    if isinstance(manifest, str):
        return load_manifests(manifest, "<manifest text>")
    if isinstance(manifest, Mapping):
        return [json.loads(json.dumps(dict(manifest)))]  # a copy the caller's dict never sees
    return [doc for item in manifest for doc in _documents(item)]


def _target(target: str, name: str | None = None) -> tuple[KindInfo, str | None]:
    kind, sep, rest = target.partition("/")
    return lookup(kind), (rest if sep else name)


def _pod(pod: str) -> str:
    kind, sep, name = pod.partition("/")
    return name if sep and kind.lower() in ("pod", "pods", "po") else pod


def _event_time(event: dict) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime")
               or event.get("metadata", {}).get("creationTimestamp") or "")


def _event_line(event: dict) -> str:
    obj = event.get("involvedObject") or {}
    return (f"{_event_time(event)}  {event.get('type', '')}  {event.get('reason', '')}  "
            f"{obj.get('kind', '')}/{obj.get('name', '')}: {event.get('message', '')}")

