"""A stream's idle timeout covers the wait for the response headers too: a daemon that is
busy (starting up, loaded) for longer than that before its first byte makes the stream idle
(StreamIdle: the caller watches again), not unreachable. A plain request still says the
daemon did not answer."""

from __future__ import annotations

import socket
import threading

import pytest

from tinykube.client import Client, DaemonUnreachable, StreamIdle


@pytest.fixture
def silent_socket(tmp_path):
    """A unix socket that accepts connections and never answers."""
    path = tmp_path / "silent.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield path
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_a_stream_whose_headers_do_not_come_within_the_idle_timeout_is_idle(silent_socket):
    with Client(silent_socket) as client, pytest.raises(StreamIdle):
        list(client.watch("Pod", idle_timeout=0.2))


def test_a_request_not_answered_in_time_is_still_unreachable(silent_socket):
    with Client(silent_socket, timeout=0.2) as client, \
            pytest.raises(DaemonUnreachable, match="did not answer within"):
        client.request("GET", "/healthz")
