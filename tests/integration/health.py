"""`/healthz` latency, for tests whose issue demands the API keeps answering under load."""

from __future__ import annotations

import socket
import time
from pathlib import Path

HEALTHZ_BOUND = 0.100  # seconds: the bound ("/healthz answers within 100 ms")
HEALTHZ_OUTLIER = 0.5  # no single answer may take longer, however loaded the machine


def healthz_seconds(socket_path: Path, timeout: float = 5.0) -> float:
    """One GET /healthz on a fresh connection; seconds until the whole answer is in (the
    timeout, if it never comes)."""
    start = time.monotonic()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(socket_path))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: tinykube\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    except TimeoutError:
        return timeout
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    return time.monotonic() - start


def assert_healthz_fast(socket_path: Path, samples: int = 10, interval: float = 0.1) -> None:
    """Most samples within the bound and none near a second. What this guards against (an
    event loop that spins or blocks on file work) makes every sample slow; a lone sample
    over the bound is the scheduler of a loaded 2-core test machine, not the daemon."""
    times = []
    for _ in range(samples):
        times.append(healthz_seconds(socket_path))
        time.sleep(interval)
    shown = [round(t * 1000) for t in times]
    within = sum(t <= HEALTHZ_BOUND for t in times)
    assert within >= 0.8 * samples, \
        f"/healthz over {HEALTHZ_BOUND * 1000:.0f} ms in {samples - within} of {samples}: {shown}"
    assert max(times) <= HEALTHZ_OUTLIER, f"/healthz took {max(times) * 1000:.0f} ms: {shown}"
