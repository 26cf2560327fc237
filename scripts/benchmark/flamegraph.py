"""`scripts/bench --profile FILE`: a `py-spy record` flame graph (SVG) of the daemon while it
scales a ReplicaSet out to the run's largest size (500 pods in a full run).

py-spy samples the daemon from outside (`--nonblocking`: the daemon is never paused, so the
scale-out is timed as usual, a little slower for the sampler's CPU on a 2-core machine). It
is the `bench` extra of pyproject.toml; the benchmark installs it into its virtualenv when
it is missing. The SVG is written when py-spy gets SIGINT, after the pods are running.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

RATE = 250  # samples per second


def py_spy() -> str:
    """The py-spy program, installed first if needed."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    found = shutil.which("py-spy")
    if found:
        return found
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "py-spy>=0.3"], check=True)
    return str(beside)


@contextlib.contextmanager
def recording(pid: int, output: Path | None, title: str) -> Iterator[None]:
    """Sample `pid` into the flame graph `output` for the duration of the block (a no-op
    when `output` is None)."""
    if output is None:
        yield
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen([py_spy(), "record", "--pid", str(pid), "--rate", str(RATE),
                            "--nonblocking", "--format", "flamegraph", "--output", str(output),
                            "--function"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            _, err = spy.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
        if not output.exists():
            raise RuntimeError(f"py-spy wrote no flame graph ({title}): "
                               + err.decode(errors="replace")[-1000:])
