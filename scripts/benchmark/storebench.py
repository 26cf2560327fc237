"""Store: the SQLite store called in-process, no HTTP (store_direct.py, run in the target's
Python): creates per second from one writer, durable (fsynced) and not, and a list of every
pod. The API section measures the same store behind the API server."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from .context import Context
from .daemon import PYTHON, TARGET
from .report import Section
from .stats import Summary, scaled


def run(ctx: Context) -> Section:
    pods = 300 if ctx.quick else 1000
    section = Section("Store (SQLite, in-process, one writer)")
    base = Path(tempfile.mkdtemp(prefix="tkbench-store-"))
    try:
        done = subprocess.run([PYTHON, "-m", "scripts.benchmark.store_direct", str(base),
                               str(pods), str(ctx.repeat)], cwd=TARGET, capture_output=True,
                              text=True, check=False, timeout=600)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"store_direct failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    section.add(f"durable creates per second ({pods} pods)",
                Summary.of(result["durable_creates_per_s"], "/s"))
    section.add(f"creates per second, not durable ({pods} pods)",
                Summary.of(result["creates_per_s"], "/s"))
    section.add(f"list of {2 * pods} pods (copies)", Summary.of(scaled(result["list_s"], 1000),
                                                              "ms"))
    ctx.raw["store"] = result
    return section
