"""How much joining a cgroup adds to starting a process under tk-shim, per way of joining.

    python -m scripts.benchmark.cgroupjoin [N]     (as root, from the repo root)

Starts `true` N times (default 300) under tk-shim in monitor mode, as a container starts:
with no cgroup; joining by a write of 0 to each hierarchy's join file (`-c FD`: v1's `tasks`
in four hierarchies, v2's `cgroup.procs`); and, on cgroup v2, created inside the cgroup by
clone3(CLONE_INTO_CGROUP) (`-K DIRFD`). Prints the median and p90 of each and their ratio to
the no-cgroup start. Absolute times under emulation (the VM lane) are slow; compare the ratios.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

from tinykube.runtime.cgroups import Limits, detect
from tinykube.runtime.sandbox import shim_spawn


def start_and_wait(setup: list[str], fds: list[int], exit_file: str) -> float:
    t0 = time.perf_counter()
    proc = shim_spawn(setup, [exit_file, "--", "true"], "benchmark", fds)
    proc.wait()
    return time.perf_counter() - t0


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    cgroups = detect(subtree=f"tinykube-bench-{os.getpid()}")
    uid = "bench"
    cgroups.create_container(uid, "app", Limits())
    ways: dict[str, tuple[list[str], list[int]]] = {"no cgroup": ([], [])}
    procs_fds = cgroups.join_fds(uid, "app")
    ways[f"{cgroups.JOIN_FILE} write (v{cgroups.version}, {len(procs_fds)} hierarchies)"] = (
        [a for fd in procs_fds for a in ("-c", str(fd))], procs_fds)
    if cgroups.version == 2:
        ways["clone3 CLONE_INTO_CGROUP (v2)"] = cgroups.join_args(uid, "app")
    samples: dict[str, list[float]] = {name: [] for name in ways}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            exit_file = os.path.join(tmp, "exit")
            for _ in range(n):  # interleaved, so load changes hit every way alike
                for name, (setup, fds) in ways.items():
                    if name != "no cgroup" and "-c" in setup:
                        # A write to cgroup.procs is consumed: reopen for every start.
                        fds = cgroups.join_fds(uid, "app")
                        setup = [a for fd in fds for a in ("-c", str(fd))]
                        samples[name].append(start_and_wait(setup, fds, exit_file))
                        for fd in fds:
                            os.close(fd)
                    else:
                        samples[name].append(start_and_wait(setup, fds, exit_file))
    finally:
        for _, fds in ways.values():
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        cgroups.remove_all()
    base = statistics.median(samples["no cgroup"])
    print(f"cgroup v{cgroups.version}, {n} starts of `true` under tk-shim each")
    for name, values in samples.items():
        median = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"  {name:40s} median {median * 1e3:7.2f} ms  p90 {p90 * 1e3:7.2f} ms"
              f"  {median / base:5.2f}x the no-cgroup start")


if __name__ == "__main__":
    main()
