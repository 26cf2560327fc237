"""The SQLite store alone, called in-process (no HTTP): durable creates per second from one
writer, and listing every pod (copies, as the API's list takes them). Runs in the target's
Python (daemon.TARGET), so `scripts/bench-ab` compares two revisions' stores with the same
driver; it uses only the interface both share (`Store(path)`, `create`, `list`).

    python -m scripts.benchmark.store_direct ROOT PODS REPEAT   → JSON on stdout
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import trio

from tinykube.store import Store


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"bench": "store"}},
            "spec": {"containers": [{"name": "app", "image": "scratch",
                                     "command": ["catatonit", "-P"]}]}}


async def measure(root: Path, pods: int, repeat: int) -> dict[str, list[float]]:
    store = Store(root / "state.db")
    try:
        start = time.monotonic()
        for i in range(pods):
            await store.create(pod(f"durable-{i}"), durable=True)
        durable = pods / (time.monotonic() - start)
        start = time.monotonic()
        for i in range(pods):
            await store.create(pod(f"plain-{i}"))
        plain = pods / (time.monotonic() - start)
        lists = []
        for _ in range(repeat):
            start = time.monotonic()
            found = store.list("Pod", "default")
            lists.append(time.monotonic() - start)
            if len(found) != 2 * pods:
                raise RuntimeError(f"listed {len(found)} pods, expected {2 * pods}")
    finally:
        store.close()
    return {"durable_creates_per_s": [durable], "creates_per_s": [plain], "list_s": lists}


if __name__ == "__main__":
    result = trio.run(measure, Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
    print(json.dumps(result))
