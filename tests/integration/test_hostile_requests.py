"""Issue 14's malformed requests against one real daemon: each gets the answer Kubernetes
gives (a Status naming the field, or a generated name), and changes nothing else.

The cases are data (`hostile.CASES`); `test_fault_campaign.py` replays the same list with a
daemon restart after each.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.integration import hostile
from tests.integration.daemon import Daemon, wait_for

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("hostile")).start()
    try:
        d.apply(hostile.BASELINE)
        d.wait_running("quiet")
        d.wait_running("db-0")
        yield d
    finally:
        d.cleanup()


@pytest.mark.parametrize("case", hostile.CASES, ids=[c.id for c in hostile.CASES])
def test_malformed_request_is_answered_and_changes_nothing_else(daemon: Daemon, case):
    sock = str(daemon.socket)
    before = hostile.snapshot(sock)
    code, body, headers = hostile.send(sock, case)
    hostile.check_answer(case, code, body, headers)
    if case.creates:
        name = body["metadata"]["name"]
        assert daemon.client.get("Pod", name)["metadata"]["generateName"] == "g-"
        daemon.client.delete("Pod", name, grace_period=0)
        wait_for(lambda: name not in {k[2] for k in hostile.snapshot(sock)},
                 what=f"pod {name} gone")
    # Everything still reads: the list of pods, the CLI, the objects outside the request.
    assert daemon.client.list("Pod", "*")
    daemon.cli("get", "pods")
    assert hostile.snapshot(sock) == before
    assert hostile.healthz_ms(sock) < 100


def test_generate_name_gives_each_create_its_own_name(daemon: Daemon):
    """Creates with one prefix get distinct names: the prefix and 5 random characters."""
    created = [daemon.client.create(hostile._pod({"generateName": "g-"}))["metadata"]["name"]
               for _ in range(3)]
    try:
        assert len(set(created)) == 3
        assert all(hostile.GENERATED.match(n) for n in created)
    finally:
        for name in created:
            daemon.client.delete("Pod", name, grace_period=0)


def test_cli_reports_a_full_connection_backlog_without_a_traceback(tmp_path):
    """A socket that is listening but never accepts fills its backlog; the CLI then says
    so and exits 1, instead of a BlockingIOError traceback."""
    path = tmp_path / "busy.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(0)
    fillers = []
    try:
        while True:  # fill the backlog with connections nobody accepts
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            fillers.append(s)
            try:
                s.connect(str(path))
            except BlockingIOError:
                break
            assert len(fillers) < 100
        result = subprocess.run([sys.executable, "-m", "tinykube.cli.main", "--socket",
                                 str(path), "get", "pods"], capture_output=True, text=True,
                                timeout=60, check=False)
    finally:
        for s in fillers:
            s.close()
        server.close()
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    assert "backlog is full" in result.stderr, result.stderr
