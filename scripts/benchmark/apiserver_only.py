"""The API server alone (store + HTTP on a unix socket; no node, no controllers), for the API
figures: object creates per second, big lists, watch fan-out. Pods created here are objects
only; nothing runs them, so 10,000 of them cost no processes.

It also stamps, with `time.monotonic()` (CLOCK_MONOTONIC, system-wide), when each Pod event
reaches a watcher inside this process: that is the moment the store published the event, and
the benchmark's watchers through the socket are timed from it.

    python -m scripts.benchmark.apiserver_only ROOT SOCKET STAMPS_FILE
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import trio

from tinykube.apiserver import ApiServer, serve
from tinykube.store import Store


async def _stamp_events(store: Store, stamps_path: Path) -> None:
    fd = os.open(stamps_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        with store.watch("Pod") as watch:
            async for event in watch:
                os.write(fd, f"{event.resource_version} {time.monotonic()}\n".encode())
    finally:
        os.close(fd)


async def main(root: Path, socket_path: Path, stamps_path: Path) -> None:
    store = Store(root / "state.db")
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stamp_events, store, stamps_path)
            await nursery.start(serve, ApiServer(store), socket_path)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break
    finally:
        store.close()


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
