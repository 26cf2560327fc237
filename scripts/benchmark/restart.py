"""Daemon restart: stop the daemon with N pods running, start it again, and time how long
until every pod is re-adopted (supervised again).

Re-adoption is not visible in the API (a pod's status does not change), so it is read from
the host: the daemon holds a pidfd on every pause and every container process it
supervises. Before the stop, with all N pods running, the daemon holds P pidfds; after the
start, "all re-adopted" is the moment it holds P again. The API answering is timed too, and
the daemon's "serving" log line (every part started), and the daemon's own CPU time until
its API answered: a figure the machine's load does not inflate, so a slower start (more
imports, modules compiled from source, more work before serving) shows in it. The same is
measured first with no pods. Polling /proc here is reading the host, not a pod status.
"""

from __future__ import annotations

import time

from . import host, manifests
from .context import Context
from .report import Section, Target
from .stats import Summary
from .watching import Watcher, running

RS = "adopt"


def wait_pidfds(pid: int, wanted: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.pidfd_count(pid) >= wanted:
            return time.monotonic()
        time.sleep(0.002)
    raise TimeoutError(f"daemon {pid} held {host.pidfd_count(pid)} pidfds, not {wanted}")


def run(ctx: Context) -> Section:
    n = ctx.restart_pods
    section = Section(f"Daemon restart ({n} pods)")
    restarts = min(ctx.repeat, 5)
    api, adopted, serving, cpu, adopted_cpu = [], [], [], [], []
    empty_api, empty_serving, empty_cpu = [], [], []
    d = ctx.daemon(log_level="INFO")
    try:
        for _ in range(restarts):
            d.stop()
            empty_api.append(d.start())
            ctx.pids.add(d.pid)
            empty_cpu.append(d.answer_cpu)
            empty_serving.append(d.serving())
        with Watcher(d.socket, "Pod", label_selector=f"bench={RS}") as watch:
            up = watch.expect(lambda pods: sum(running(p) for p in pods.values()) == n,
                              f"{n} pods running")
            d.client.create(manifests.replica_set(RS, n))
            up.wait(600)
            ctx.pod_uids |= watch.uids
            before = {name: p["status"]["containerStatuses"][0]["containerID"]
                      for name, p in watch.snapshot().items()}
        time.sleep(1)  # let status publishing settle
        wanted = host.pidfd_count(d.pid)
        if wanted < 2 * n:
            raise RuntimeError(f"daemon holds {wanted} pidfds for {n} pods; expected >= {2 * n}")
        flame = ctx.flame("restart")
        if flame is not None:  # one restart more, under py-spy, not counted in the figures
            d.stop()
            d.start(flame=flame)
            ctx.pids.add(d.pid)
            wait_pidfds(d.pid, wanted, 300)
        for _ in range(restarts):
            d.stop()
            answered = d.start()
            ctx.pids.add(d.pid)
            done = wait_pidfds(d.pid, wanted, 300)
            api.append(answered)
            cpu.append(d.answer_cpu)
            adopted.append(done - d.started_at)
            adopted_cpu.append(host.cpu_seconds(d.pid))
            serving.append(d.serving())
        after = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["containerID"]
                 for p in d.client.list("Pod", label_selector=f"bench={RS}")}
        if after != before:
            section.notes.append("pods or container processes changed across the restarts: "
                                 f"{len(set(before.items()) - set(after.items()))} differ")
    finally:
        d.purge()
    judged = n >= 500  # issue 20's targets are for 500 pods
    section.add("no pods: start → API answering", Summary.of(empty_api, "s"))
    section.add("  no pods: daemon CPU until the API answered", Summary.of(empty_cpu, "s"))
    section.add("no pods: start → serving (log line: every part started)",
                Summary.of(empty_serving, "s"))
    section.add("start → API answering", Summary.of(api, "s"), Target(0.5) if judged else None)
    section.add("  daemon CPU until the API answered", Summary.of(cpu, "s"))
    section.add(f"start → all {n} pods re-adopted (pidfds held again)", Summary.of(adopted, "s"),
                Target(1.5) if judged else None)
    section.add("  daemon CPU until all were re-adopted", Summary.of(adopted_cpu, "s"))
    section.add("start → serving (log line: every part started)", Summary.of(serving, "s"))
    if not judged:
        section.notes.append(f"{n} pods < 500: the restart targets are not judged")
    section.notes.append("the daemon is a fresh Python process each time: interpreter and "
                         "import time are included")
    ctx.raw["restart"] = {"pods": n, "api_s": api, "adopted_s": adopted, "serving_s": serving,
                          "api_cpu_s": cpu, "adopted_cpu_s": adopted_cpu, "empty_api_s": empty_api,
                          "empty_serving_s": empty_serving, "empty_api_cpu_s": empty_cpu}
    return section
