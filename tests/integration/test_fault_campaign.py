"""Issue 14's fault campaign: every malformed request of `hostile.CASES` against a real
daemon, and a restart after each. After every case the daemon starts, `/healthz` answers
within 100 ms, no object outside the request changed (a snapshot of every object's metadata
and spec), and the StatefulSet's claim directory and its data are still there.

Bounded in time: each case (request, restart, checks) must finish within CASE_SECONDS, so
the campaign ends within len(CASES) * CASE_SECONDS; every request has its own 20 s timeout,
so a hang fails at once. Measured: 30 cases in 141 s on a busy shared 2-core machine, nearly
all of it the restarts (~4 s each); the watch case waits 3 s for its answer by design.
"""

from __future__ import annotations

import time

import pytest

from tests.integration import hostile
from tests.integration.daemon import Daemon, wait_for

pytestmark = pytest.mark.root

CASE_SECONDS = 30


def _claim_file(daemon: Daemon):
    return daemon.root / "volumes" / "default" / "data-db-0" / "file"


def _settled_snapshot(sock: str) -> dict:
    last = [hostile.snapshot(sock)]

    def settled() -> bool:
        time.sleep(0.5)
        now = hostile.snapshot(sock)
        same, last[0] = now == last[0], now
        return same
    wait_for(settled, timeout=30, what="the objects to settle")
    return last[0]


def test_fault_campaign_replays_every_malformed_request_with_a_restart_after_each(
        daemon: Daemon):
    daemon.apply(hostile.BASELINE)
    daemon.wait_running("quiet")
    daemon.wait_running("db-0")
    wait_for(lambda: _claim_file(daemon).exists(), what="the claim's data")
    sock = str(daemon.socket)
    baseline = _settled_snapshot(sock)
    claim_data = _claim_file(daemon).read_text()

    started = time.monotonic()
    for case in hostile.CASES:
        deadline = time.monotonic() + CASE_SECONDS
        code, body, headers = hostile.send(sock, case)
        hostile.check_answer(case, code, body, headers)
        if case.creates:  # a valid request: its own object goes again before the comparison
            name = body["metadata"]["name"]
            daemon.client.delete("Pod", name, grace_period=0)
        daemon.stop()
        daemon.start()
        assert hostile.healthz_ms(sock) < 100, case.id
        assert hostile.snapshot(sock) == baseline, f"{case.id} changed other objects"
        assert _claim_file(daemon).read_text() == claim_data, f"{case.id}: claim data lost"
        assert time.monotonic() < deadline, f"{case.id} took longer than {CASE_SECONDS}s"
    assert daemon.client.health() == {"status": "ok"}
    print(f"fault campaign: {len(hostile.CASES)} cases, {time.monotonic() - started:.1f}s")
