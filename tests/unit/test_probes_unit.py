"""Probe parameters, thresholds, cadence and orchestration (no network, fake checks)."""

import pytest
import trio
import trio.testing

from tinykube.runtime.probes import (
    ProbeError,
    ProbeHooks,
    ProbeKind,
    ProbeSpec,
    ProbeTracker,
    attempt_times,
    container_probes,
    parse_probe,
    run_container_probes,
)

CONTAINER = {"name": "web", "ports": [{"name": "http", "containerPort": 8080}]}


def test_defaults_are_kubernetes_defaults():
    spec = parse_probe(ProbeKind.LIVENESS, {"tcpSocket": {"port": 80}}, CONTAINER, "p")
    assert (spec.initial_delay, spec.period, spec.timeout, spec.success_threshold,
            spec.failure_threshold) == (0, 10, 1, 1, 3)
    assert spec.handler == "tcpSocket" and spec.port == 80 and spec.host is None


def test_named_port_and_http_fields():
    spec = parse_probe(ProbeKind.READINESS, {
        "httpGet": {"port": "http", "path": "/healthz",
                    "httpHeaders": [{"name": "X-A", "value": "1"}]},
        "successThreshold": 2}, CONTAINER, "p")
    assert spec.port == 8080 and spec.path == "/healthz" and spec.headers == (("X-A", "1"),)
    assert spec.success_threshold == 2 and spec.scheme == "HTTP"


def test_an_unknown_port_name_in_a_pod_the_api_never_saw_names_the_field():
    # The API refuses it (test_model_validation.py::test_probes); the runtime still reports
    # rather than crashes on a pod written straight into the store.
    with pytest.raises(ProbeError, match="no container port named 'nope'"):
        parse_probe(ProbeKind.LIVENESS, {"tcpSocket": {"port": "nope"}}, CONTAINER,
                    "spec.containers[0].livenessProbe")


def test_container_probes_collects_all_kinds():
    c = dict(CONTAINER, readinessProbe={"tcpSocket": {"port": 1}},
             startupProbe={"exec": {"command": ["true"]}})
    assert set(container_probes(c, "c")) == {ProbeKind.READINESS, ProbeKind.STARTUP}


def spec(kind, **kw):
    return ProbeSpec(kind, "exec", command=("true",), **kw)


def test_liveness_starts_healthy_and_fails_after_threshold():
    t = ProbeTracker(spec(ProbeKind.LIVENESS, failure_threshold=3))
    assert t.result is True
    assert [t.observe(False) for _ in range(3)] == [None, None, False]
    assert t.observe(False) is None  # already failed: no second flip
    assert t.observe(True) is True


def test_readiness_needs_consecutive_successes():
    t = ProbeTracker(spec(ProbeKind.READINESS, success_threshold=2, failure_threshold=2))
    assert t.result is False
    assert t.observe(True) is None
    assert t.observe(False) is None  # streak broken
    assert t.observe(True) is None
    assert t.observe(True) is True
    assert t.observe(False) is None
    assert t.observe(False) is False


def test_startup_unknown_until_decided():
    t = ProbeTracker(spec(ProbeKind.STARTUP, failure_threshold=2))
    assert t.result is None
    assert t.observe(False) is None
    assert t.observe(False) is False


def test_attempt_times():
    s = spec(ProbeKind.READINESS, initial_delay=5, period=3)
    assert attempt_times(s, 100.0, 3) == [105.0, 108.0, 111.0]


class Recorder:
    def __init__(self, results):
        self.results = dict(results)  # kind -> list of bools (last one repeats)
        self.log = []

    def hooks(self):
        async def checker(s):
            seq = self.results[s.kind]
            ok = seq.pop(0) if len(seq) > 1 else seq[0]
            self.log.append((trio.current_time(), s.kind.value, ok))
            return ok, "" if ok else "boom"

        async def set_started():
            self.log.append((trio.current_time(), "started"))

        async def set_ready(ok):
            self.log.append((trio.current_time(), "ready", ok))

        async def kill(message):
            self.log.append((trio.current_time(), "kill", message))

        async def event(type_, reason, message):
            self.log.append((trio.current_time(), "event", reason))

        return ProbeHooks(checker, set_started, set_ready, kill, event)


async def test_startup_holds_liveness_and_readiness(autojump_clock):
    rec = Recorder({ProbeKind.STARTUP: [False, False, True],
                    ProbeKind.LIVENESS: [True], ProbeKind.READINESS: [True]})
    probes = {ProbeKind.STARTUP: spec(ProbeKind.STARTUP, period=1, failure_threshold=5),
              ProbeKind.LIVENESS: spec(ProbeKind.LIVENESS, period=10),
              ProbeKind.READINESS: spec(ProbeKind.READINESS, period=10, initial_delay=1)}
    start = trio.current_time()
    with trio.move_on_after(15):
        await run_container_probes(probes, start, rec.hooks(), "web")
    kinds = [entry[1] for entry in rec.log]
    first_other = min(kinds.index("liveness"), kinds.index("readiness"))
    assert kinds.index("started") < first_other
    assert kinds[:5] == ["startup", "event", "startup", "event", "startup"]
    ready = [e for e in rec.log if e[1] == "ready"]
    assert ready and ready[0][2] is True and ready[0][0] - start == pytest.approx(2)


async def test_liveness_failure_kills_once(autojump_clock):
    rec = Recorder({ProbeKind.LIVENESS: [False]})
    probes = {ProbeKind.LIVENESS: spec(ProbeKind.LIVENESS, period=2, failure_threshold=3,
                                       initial_delay=4)}
    start = trio.current_time()
    with trio.move_on_after(60):
        await run_container_probes(probes, start, rec.hooks(), "web")
    kills = [e for e in rec.log if e[1] == "kill"]
    assert len(kills) == 1 and "liveness" in kills[0][2]
    assert kills[0][0] - start == pytest.approx(4 + 2 * 2)
    # No readiness probe: ready as soon as started.
    assert (start, "ready", True) in rec.log
    assert sum(1 for e in rec.log if e[1] == "event") == 3


async def test_failed_startup_kills_without_starting(autojump_clock):
    rec = Recorder({ProbeKind.STARTUP: [False]})
    probes = {ProbeKind.STARTUP: spec(ProbeKind.STARTUP, period=1, failure_threshold=2)}
    await run_container_probes(probes, trio.current_time(), rec.hooks(), "web")
    assert [e[1] for e in rec.log if e[1] in ("kill", "started", "ready")] == ["kill"]
