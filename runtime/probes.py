"""Liveness, readiness and startup probes, run inside the pod's network namespace.

Kubernetes semantics (pkg/kubelet/prober/worker.go):
- A probe first runs `initialDelaySeconds` after the container started, then every
  `periodSeconds`; each attempt is bounded by `timeoutSeconds` (a timeout is a failure).
- The result flips to success after `successThreshold` consecutive successes and to failure
  after `failureThreshold` consecutive failures. Liveness starts as success, readiness as
  failure, startup as unknown.
- A startup probe holds liveness and readiness back until it succeeds; its failure, like a
  liveness failure, kills the container (which then restarts by restartPolicy). Readiness
  only flips the container's `ready`. A container without readiness probe is ready once
  running (and started).

Cost at hundreds of pods: a probe is one trio task sleeping between attempts. tcpSocket and
httpGet need a socket *in the pod's netns*: a socket stays in the netns it was created in,
so one long-lived thread (`NetnsSockets`) setns'es into the pod's netns, creates the socket
and hands the fd back; connect and I/O then run on trio's event loop. No thread or process
per attempt. exec probes run the command in the container through an injected function (the
low-level `exec_in_container`), which is a process per attempt, as in Kubernetes.
"""

from __future__ import annotations

import copy
import enum
import math
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import h11
import trio

from . import syscalls
from .sandbox import SpawnError

from tinykube.model.defaults import default_probe
from tinykube.netns.threads import SerialThread


class ProbeError(ValueError):
    """A probe spec that cannot run; the message names the field."""


class ProbeKind(str, enum.Enum):
    LIVENESS = "liveness"
    READINESS = "readiness"
    STARTUP = "startup"

    @property
    def field(self) -> str:
        return f"{self.value}Probe"


@dataclass(frozen=True)
class ProbeSpec:
    kind: ProbeKind
    handler: str  # "exec" | "tcpSocket" | "httpGet"
    command: tuple[str, ...] = ()
    host: str | None = None
    port: int = 0
    path: str = "/"
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3


HANDLERS = ("exec", "tcpSocket", "httpGet")


def resolve_port(port: int | str, container: dict[str, Any], where: str) -> int:
    """A probe port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    # Validation refuses this; a pod written straight into the store can still say it.
    raise ProbeError(f"{where}.port: no container port named {port!r}")


def parse_probe(kind: ProbeKind, probe: dict[str, Any], container: dict[str, Any],
                where: str) -> ProbeSpec:
    """A container's `<kind>Probe` -> ProbeSpec. The API validated it (model/validation.py)
    and the defaults are model/defaults.py's, applied to a copy here too for pods that were
    written without them."""
    probe = copy.deepcopy(probe)
    default_probe(probe)
    timing: dict[str, Any] = {
        "initial_delay": probe["initialDelaySeconds"], "period": probe["periodSeconds"],
        "timeout": probe["timeoutSeconds"], "success_threshold": probe["successThreshold"],
        "failure_threshold": probe["failureThreshold"],
    }
    handler = next(h for h in HANDLERS if probe.get(h) is not None)
    body = probe[handler]
    if handler == "exec":
        return ProbeSpec(kind, handler, command=tuple(body["command"]), **timing)
    port = resolve_port(body["port"], container, f"{where}.{handler}")
    if handler == "tcpSocket":
        return ProbeSpec(kind, handler, host=body.get("host") or None, port=port, **timing)
    headers = tuple((h["name"], h["value"]) for h in body.get("httpHeaders") or [])
    return ProbeSpec(kind, handler, host=body.get("host") or None, port=port, path=body["path"],
                     scheme=body["scheme"], headers=headers, **timing)


def container_probes(container: dict[str, Any], where: str) -> dict[ProbeKind, ProbeSpec]:
    probes = {}
    for kind in ProbeKind:
        probe = container.get(kind.field)
        if probe:
            probes[kind] = parse_probe(kind, probe, container, f"{where}.{kind.field}")
    return probes


class ProbeTracker:
    """Consecutive-result counting: `observe` returns the new result when it flips, else None."""

    def __init__(self, spec: ProbeSpec) -> None:
        self.spec = spec
        # Liveness starts healthy, readiness unready, startup unknown (None).
        self.result: bool | None = {ProbeKind.LIVENESS: True, ProbeKind.READINESS: False,
                                    ProbeKind.STARTUP: None}[spec.kind]
        self.successes = 0
        self.failures = 0

    def observe(self, ok: bool) -> bool | None:
        if ok:
            self.successes += 1
            self.failures = 0
            if self.result is not True and self.successes >= self.spec.success_threshold:
                self.result = True
                return True
        else:
            self.failures += 1
            self.successes = 0
            if self.result is not False and self.failures >= self.spec.failure_threshold:
                self.result = False
                return False
        return None


def attempt_times(spec: ProbeSpec, started: float, count: int) -> list[float]:
    """When the first `count` attempts run (for tests and the loop): a fixed cadence."""
    return [started + spec.initial_delay + i * spec.period for i in range(count)]


# -- sockets inside a pod's network namespace ---------------------------------------------

class NetnsSockets:
    """One long-lived thread that creates sockets inside pods' network namespaces.

    setns(CLONE_NEWNET) changes only the calling thread, so the thread is ours alone (never
    trio's thread cache, whose threads run other jobs): a `netns.threads.SerialThread`, the
    same mechanism the host's netlink work runs on. It hops from netns to netns, never back
    to the host's: it only ever creates sockets.
    """

    def __init__(self) -> None:
        self._thread: SerialThread[None] = SerialThread(
            "tk-netns-sockets", open_resource=lambda: None, close_resource=lambda _: None)

    async def socket(self, netns_fd: int, family: int = socket.AF_INET,
                     kind: int = socket.SOCK_STREAM) -> trio.socket.SocketType:
        """A trio socket created in the netns open at `netns_fd` (kept open by the caller)."""

        def create(_: None) -> int:
            syscalls.setns(netns_fd, syscalls.CLONE_NEWNET)
            return socket.socket(family, kind).detach()

        fd = await self._thread.run(create)
        return trio.socket.socket(family, kind, fileno=fd)

    def close(self) -> None:
        self._thread.close()


# -- the three handlers ----------------------------------------------------------------------

@dataclass
class ProbeTarget:
    """Where a pod's probes run: its netns (an open fd), its IP, and how to exec into it."""

    netns_fd: int
    pod_ip: str | None
    sockets: NetnsSockets
    # exec(argv, timeout) -> (exit code, output); None when the container cannot exec.
    exec_command: Callable[[list[str], float], Awaitable[tuple[int, str]]] | None = None


async def connect(target: ProbeTarget, host: str, port: int) -> trio.socket.SocketType:
    sock = await target.sockets.socket(target.netns_fd)
    try:
        await sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def http_get(sock: trio.socket.SocketType, spec: ProbeSpec, host: str) -> int:
    conn = h11.Connection(h11.CLIENT)
    headers = [("Host", f"{host}:{spec.port}"), ("User-Agent", "kube-probe/tinykube"),
               ("Accept", "*/*"), ("Connection", "close")]
    own = {name.lower() for name, _ in spec.headers}
    headers = [h for h in headers if h[0].lower() not in own] + list(spec.headers)
    data = conn.send(h11.Request(method="GET", target=spec.path, headers=headers))
    data += conn.send(h11.EndOfMessage())
    while data:
        sent = await sock.send(data)
        data = data[sent:]
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await sock.recv(4096))
            continue
        if isinstance(event, h11.Response):
            return int(event.status_code)
        if isinstance(event, h11.ConnectionClosed):
            raise ConnectionError("connection closed before a response")


async def check(spec: ProbeSpec, target: ProbeTarget) -> tuple[bool, str]:
    """One probe attempt, bounded by timeoutSeconds: (success, message for the event)."""
    host = spec.host or target.pod_ip or "127.0.0.1"
    if spec.handler == "exec":
        if target.exec_command is None:
            return False, "exec probe: container is not running"
        try:
            code, output = await target.exec_command(list(spec.command), spec.timeout)
        except (OSError, SpawnError) as e:  # e.g. the container exited as the probe began
            return False, f"exec probe failed: {e}"
        if code == 0:
            return True, ""
        return False, f"exec {list(spec.command)} exited with {code}: {output.strip()[:200]}"
    with trio.move_on_after(spec.timeout) as scope:
        try:
            sock = await connect(target, host, spec.port)
        except OSError as e:
            return False, f"dial tcp {host}:{spec.port}: {e.strerror or e}"
        with sock:
            if spec.handler == "tcpSocket":
                return True, ""
            try:
                status = await http_get(sock, spec, host)
            except (OSError, h11.ProtocolError) as e:
                return False, f"Get \"http://{host}:{spec.port}{spec.path}\": {e}"
            if 200 <= status < 400:
                return True, ""
            return False, f"HTTP probe failed with statuscode: {status}"
    assert scope.cancelled_caught
    what = f"{host}:{spec.port}"
    return False, f"{spec.handler} {what}: timeout after {spec.timeout}s"


# -- the per-container orchestration --------------------------------------------------------

@dataclass
class ProbeHooks:
    """What probes do to the container; the pod worker supplies them."""

    checker: Callable[[ProbeSpec], Awaitable[tuple[bool, str]]]  # one attempt
    set_started: Callable[[], Awaitable[None]]
    set_ready: Callable[[bool], Awaitable[None]]
    kill: Callable[[str], Awaitable[None]]  # message: why
    event: Callable[[str, str, str], Awaitable[None]]  # type, reason, message


async def _probe_loop(spec: ProbeSpec, started: float, hooks: ProbeHooks,
                      on_flip: Callable[[bool], Awaitable[bool]]) -> None:
    """Attempts at a fixed cadence until `on_flip` returns True (stop)."""
    tracker = ProbeTracker(spec)
    next_at = started + spec.initial_delay
    label = {ProbeKind.LIVENESS: "Liveness", ProbeKind.READINESS: "Readiness",
             ProbeKind.STARTUP: "Startup"}[spec.kind]
    while True:
        await trio.sleep_until(next_at)
        ok, message = await hooks.checker(spec)
        if not ok:
            await hooks.event("Warning", "Unhealthy", f"{label} probe failed: {message}")
        flipped = tracker.observe(ok)
        if flipped is not None and await on_flip(flipped):
            return
        now = trio.current_time()
        # Keep the cadence; if an attempt overran a period, skip the missed ticks.
        next_at += spec.period * max(1, math.ceil((now - next_at) / spec.period))


async def run_container_probes(probes: dict[ProbeKind, ProbeSpec], started: float,
                               hooks: ProbeHooks, container: str) -> None:
    """Drive a running container's probes until cancelled (the container exited)."""
    startup = probes.get(ProbeKind.STARTUP)
    if startup is not None:
        outcome: dict[str, bool] = {}

        async def startup_flip(ok: bool) -> bool:
            outcome["ok"] = ok
            return True

        await _probe_loop(startup, started, hooks, startup_flip)
        if not outcome.get("ok"):
            await hooks.kill(f"Container {container} failed startup probe, will be restarted")
            return
    await hooks.set_started()

    readiness = probes.get(ProbeKind.READINESS)
    liveness = probes.get(ProbeKind.LIVENESS)
    if readiness is None:
        await hooks.set_ready(True)

    async def readiness_flip(ok: bool) -> bool:
        await hooks.set_ready(ok)
        return False

    async def liveness_flip(ok: bool) -> bool:
        if ok:
            return False
        await hooks.kill(f"Container {container} failed liveness probe, will be restarted")
        return True

    async with trio.open_nursery() as nursery:
        if readiness is not None:
            nursery.start_soon(_probe_loop, readiness, started, hooks, readiness_flip)
        if liveness is not None:
            nursery.start_soon(_probe_loop, liveness, started, hooks, liveness_flip)
