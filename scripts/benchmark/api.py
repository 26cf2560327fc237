"""API: object creates per second from 8 clients, a list of 10,000 pods, a watch with 50
watchers. All against the API server alone (`apiserver_only.py`: the store and HTTP on the
unix socket; no node, so the pods are objects only), the daemon's own API code.

- creates: 8 client processes (a process each, so the clients do not share a GIL), each
  creating its share of pods back to back on one kept-alive connection; a round starts on a
  barrier and its rate is pods / (last client done - first client started). Every create is
  durable (fsynced) before it is answered, as the API's writes always are. The rounds leave
  10,000 pods behind for the list.
- list: the request sent → the whole body received (the server's work and the transfer;
  decoding it in the client is the next row).
- watch fan-out: 50 watch streams (10 threads in each of 5 processes) on the pods; one pod is
  patched, one write at a time; each event's delay is from the moment the store published it
  (stamped by a watcher inside the server process) to when the last of the 50 streams read
  its line.
"""

from __future__ import annotations

import multiprocessing
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import manifests
from .context import Context
from .daemon import PYTHON, TARGET
from .report import Section, Target
from .stats import Summary, scaled

from tinykube.client import Client, _UnixConnection
from tinykube.testing.daemon import stop_process

CLIENTS = 8
WATCHERS = 50
WATCHER_PROCESSES = 5
WATCH_EVENTS = 200
PODS_PATH = f"/api/v1/namespaces/{manifests.NAMESPACE}/pods"
_RV = re.compile(rb'"resourceVersion":\s*"(\d+)"')


class ApiOnly:
    """The API server alone on a fresh root; `stop()` ends it and removes the root."""

    def __init__(self, ctx: Context) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="tkbench-api-"))
        self.socket = self.base / "api.sock"
        self.stamps = self.base / "published"
        with open(self.base / "server.log", "wb") as log:
            self.process = subprocess.Popen(
                [PYTHON, "-m", "scripts.benchmark.apiserver_only", str(self.base),
                 str(self.socket), str(self.stamps)], stdout=log, stderr=subprocess.STDOUT,
                cwd=TARGET)
        ctx.pids.add(self.process.pid)
        client = Client(self.socket, timeout=5)
        deadline = time.monotonic() + 60
        while not (self.socket.exists() and client.healthy()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start: "
                                   + (self.base / "server.log").read_text()[-2000:])
            time.sleep(0.01)  # start-up only
        client.close()

    def published(self) -> dict[int, float]:
        stamps = {}
        for line in self.stamps.read_text().splitlines():
            rv, at = line.split()
            stamps[int(rv)] = float(at)
        return stamps

    def stop(self) -> None:
        stop_process(self.process)
        shutil.rmtree(self.base, ignore_errors=True)


# ---- creates ------------------------------------------------------------------------------

def _creator(socket: Path, names: list[str], barrier: Any, results: Any) -> None:
    client = Client(socket, timeout=120)
    client.health()  # connected before the clock starts
    barrier.wait()
    start = time.monotonic()
    for name in names:
        client.create(manifests.pod(name, {"bench": "api"}))
    results.put((start, time.monotonic()))
    client.close()


def create_round(socket: Path, prefix: str, per_client: int) -> float:
    """Creates per second of one round of CLIENTS x per_client pods."""
    mp = multiprocessing.get_context("fork")
    barrier, results = mp.Barrier(CLIENTS), mp.Queue()
    workers = [mp.Process(target=_creator, args=(
        socket, [f"{prefix}-{c}-{i}" for i in range(per_client)], barrier, results))
        for c in range(CLIENTS)]
    for w in workers:
        w.start()
    spans = [results.get(timeout=600) for _ in workers]
    for w in workers:
        w.join()
        if w.exitcode != 0:
            raise RuntimeError(f"a create client failed (exit {w.exitcode})")
    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    return CLIENTS * per_client / elapsed


# ---- list ---------------------------------------------------------------------------------

def timed_list(socket: Path, expected: int) -> tuple[float, float]:
    """(request → body received, decoding the body) in seconds."""
    import json

    conn = _UnixConnection(str(socket), 120)
    try:
        start = time.monotonic()
        conn.request("GET", PODS_PATH)
        body = conn.getresponse().read()
        received = time.monotonic()
        items = json.loads(body)["items"]
        decoded = time.monotonic()
    finally:
        conn.close()
    if len(items) != expected:
        raise RuntimeError(f"the list had {len(items)} pods, expected {expected}")
    return received - start, decoded - received


# ---- watch fan-out ------------------------------------------------------------------------

def _stream(socket: Path, since: str, events: int, ready: Any, out: list) -> None:
    conn = _UnixConnection(str(socket), 120)
    conn.request("GET", f"{PODS_PATH}?watch=true&resourceVersion={since}")
    response = conn.getresponse()  # headers come once the watch is registered
    ready.put(1)
    seen = []
    while len(seen) < events:
        line = response.readline()
        at = time.monotonic()
        if not line:
            break
        match = _RV.search(line)
        if match:
            seen.append((int(match.group(1)), at))
    out.append(seen)
    conn.close()


def _watcher_process(socket: Path, since: str, streams: int, events: int, ready: Any,
                     results: Any) -> None:
    out: list = []
    threads = [threading.Thread(target=_stream, args=(socket, since, events, ready, out))
               for _ in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put(out)


def fan_out(server: ApiOnly, events: int) -> tuple[list[float], list[float]]:
    """(per event: publish → last of the watchers, per event and watcher: publish → read)."""
    client = Client(server.socket, timeout=60)
    target = "fanout-target"
    client.create(manifests.pod(target, {"bench": "fanout"}))
    since = client.request("GET", PODS_PATH, params={"limit": "1"})["metadata"][
        "resourceVersion"]
    mp = multiprocessing.get_context("fork")
    ready, results = mp.Queue(), mp.Queue()
    per_process = WATCHERS // WATCHER_PROCESSES
    procs = [mp.Process(target=_watcher_process,
                        args=(server.socket, since, per_process, events, ready, results))
             for _ in range(WATCHER_PROCESSES)]
    for p in procs:
        p.start()
    for _ in range(WATCHERS):
        ready.get(timeout=60)
    written = []
    for i in range(events):
        obj = client.patch("Pod", target, manifests.NAMESPACE,
                           {"metadata": {"annotations": {"bench/write": str(i)}}})
        written.append(int(obj["metadata"]["resourceVersion"]))
        time.sleep(0.01)  # one event at a time: the figure is one event's fan-out
    streams = [s for _ in procs for s in results.get(timeout=120)]
    for p in procs:
        p.join()
    client.close()
    published = server.published()
    last, each = [], []
    by_stream = [dict(s) for s in streams]
    if len(by_stream) != WATCHERS:
        raise RuntimeError(f"{len(by_stream)} watch streams reported, expected {WATCHERS}")
    for rv in written:
        reads = [s[rv] for s in by_stream if rv in s]
        if len(reads) != WATCHERS:
            raise RuntimeError(f"event {rv} reached {len(reads)} of {WATCHERS} watchers")
        each += [at - published[rv] for at in reads]
        last.append(max(reads) - published[rv])
    return last, each


def run(ctx: Context) -> Section:
    section = Section("API (the API server alone, unix socket)")
    per_client = 125 if ctx.quick else 250
    rounds = 2 if ctx.quick else 5
    server = ApiOnly(ctx)
    try:
        with ctx.profiling("api-creates", server.process.pid):
            rates = [create_round(server.socket, f"api{r}", per_client) for r in range(rounds)]
        pods = rounds * CLIENTS * per_client
        with ctx.profiling("api-list", server.process.pid):
            lists = [timed_list(server.socket, pods) for _ in range(ctx.repeat)]
        with ctx.profiling("api-watch", server.process.pid):
            last, each = fan_out(server, 50 if ctx.quick else WATCH_EVENTS)
    finally:
        server.stop()
    section.add(f"creates per second, {CLIENTS} clients, {CLIENTS * per_client} pods a round "
                "(durable)", Summary.of(rates, "/s"), Target(2000, at_most=False))
    section.add(f"list of {pods} pods: request → body received",
                Summary.of(scaled([s for s, _ in lists], 1000), "ms"), Target(100))
    section.add("  then decoding it in the client (Python json)",
                Summary.of(scaled([d for _, d in lists], 1000), "ms"))
    section.add(f"watch, {WATCHERS} watchers: event published → the last watcher has it",
                Summary.of(scaled(last, 1000), "ms"), Target(5, statistic="p95"))
    section.add("  each watcher: event published → read",
                Summary.of(scaled(each, 1000), "ms"))
    section.notes.append("no node and no controllers run in this server: the figures are the "
                         "API and the store alone; the clients are Python processes on the "
                         "same 2 cores")
    ctx.raw["api"] = {"creates_per_s": rates, "list_s": lists, "fanout_last_s": last}
    return section
