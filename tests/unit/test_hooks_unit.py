"""runtime/hooks.py's decisions without a pod: which handler runs, what counts as a failure
and the kubelet's wording of the failure (it becomes the FailedPostStartHook /
FailedPreStopHook event's message). The real runs are tests/integration/test_lifecycle_hooks.py."""

import math

import pytest
import trio

from tinykube.runtime.hooks import HookFailed, handler_kind, run_hook
from tinykube.runtime.probes import ProbeTarget

CONTAINER = {"name": "app", "ports": [{"name": "web", "containerPort": 8080}]}
POD = "web-0_default(1234)"


class Sockets:
    """A netns socket factory whose connects all fail (nothing listens)."""

    async def socket(self, netns_fd, family=None, kind=None):
        raise ConnectionRefusedError(111, "connection refused")


def target() -> ProbeTarget:
    return ProbeTarget(-1, "10.0.0.5", Sockets())  # type: ignore[arg-type]


def exec_returning(code: int, output: str, calls: list):
    async def run(argv, timeout):
        calls.append((argv, timeout))
        return code, output
    return run


async def test_exec_hook_runs_the_command_without_a_timeout_of_its_own():
    calls: list = []
    await run_hook({"exec": {"command": ["touch", "/x"]}}, container=CONTAINER, pod_ref=POD,
                   target=target(), exec_command=exec_returning(0, "", calls))
    assert calls == [(["touch", "/x"], math.inf)]


async def test_a_failing_exec_hook_says_what_the_kubelet_says():
    with pytest.raises(HookFailed) as failed:
        await run_hook({"exec": {"command": ["sh", "-c", "exit 3"]}}, container=CONTAINER,
                       pod_ref=POD, target=target(),
                       exec_command=exec_returning(3, "oops\n", []))
    assert str(failed.value) == (
        'Exec lifecycle hook ([sh -c exit 3]) for Container "app" in Pod "web-0_default(1234)" '
        "failed - error: command 'sh -c exit 3' exited with 3: oops\n, message: \"oops\\n\"")


async def test_http_hook_fails_only_without_a_response():
    with pytest.raises(HookFailed) as failed:
        await run_hook({"httpGet": {"port": "web", "path": "/bye"}}, container=CONTAINER,
                       pod_ref=POD, target=target(), exec_command=exec_returning(0, "", []))
    assert str(failed.value).startswith(
        'HTTP lifecycle hook (/bye) for Container "app" in Pod "web-0_default(1234)" failed - '
        "error: ")


async def test_tcp_socket_is_not_runnable_and_sleep_sleeps(autojump_clock):
    with pytest.raises(HookFailed, match="invalid handler: tcpSocket"):
        await run_hook({"tcpSocket": {"port": 8080}}, container=CONTAINER, pod_ref=POD,
                       target=target(), exec_command=exec_returning(0, "", []))
    before = trio.current_time()
    await run_hook({"sleep": {"seconds": 5}}, container=CONTAINER, pod_ref=POD,
                   target=target(), exec_command=exec_returning(0, "", []))
    assert trio.current_time() - before == 5


def test_handler_kind():
    assert handler_kind({"sleep": {"seconds": 1}}) == "sleep"
    assert handler_kind({"tcpSocket": {"port": 1}}) == "tcpSocket"
    assert handler_kind({}) == ""
