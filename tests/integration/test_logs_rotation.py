"""Container logs on a real daemon (issue 14): a size cap with rotation (tk-shim rotates,
`--container-log-max-size`/`--container-log-max-files`), `logs` reading across the rotated
files (whole, --tail, -f, --previous), and `--tail` on a big log not stalling the daemon.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from tests.integration.daemon import wait_for
from tests.integration.health import assert_healthz_fast

pytestmark = pytest.mark.root

MAX_SIZE = 64 * 1024
MAX_FILES = 3
# What tk-shim writes at once: one 64 KiB read plus an unfinished line of up to 16 KiB
# held from the read before. A file may pass the size by that much before it rotates.
CHUNK = 64 * 1024 + 16 * 1024


def pod(name: str, script: str, restart: str = "Always") -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1, "restartPolicy": restart,
                 "containers": [{"name": "c", "command": ["sh", "-c", script]}]}})


@pytest.fixture
def small_logs(daemon):
    daemon.stop()
    daemon.extra_args = ["--container-log-max-size", str(MAX_SIZE),
                         "--container-log-max-files", str(MAX_FILES)]
    daemon.start()
    return daemon


def log_dir(daemon, name: str):
    uid = daemon.pod(name)["metadata"]["uid"]
    return daemon.root / "pods" / uid / "logs" / "c"


def disk_use(directory) -> tuple[int, set[str]]:
    """Bytes and names of the log files (tk-shim renames them meanwhile: a file gone
    between the listing and its stat was just rotated away)."""
    total, names = 0, set()
    for f in directory.iterdir():
        try:
            total += f.stat().st_size
        except FileNotFoundError:
            continue
        names.add(f.name)
    return total, names


def lines_of(text: str) -> list[int]:
    return [int(line) for line in text.splitlines()]


def test_a_pod_logging_as_fast_as_it_can_stays_under_the_cap(small_logs):
    d = small_logs
    d.apply(pod("flood", "yes 0123456789abcdef"))
    d.wait_running("flood")
    directory = log_dir(d, "flood")
    wait_for(lambda: (directory / f"0.log.{MAX_FILES - 1}").exists(), what="rotations")
    cap = MAX_FILES * (MAX_SIZE + CHUNK)
    for _ in range(20):  # while it keeps writing
        total, names = disk_use(directory)
        assert total <= cap, f"{total} bytes of logs, cap {cap}"
        assert names <= {"0.log", *(f"0.log.{k}" for k in range(1, MAX_FILES))}, names
        time.sleep(0.1)
    tail = d.cli("logs", "flood", "--tail", "5").stdout
    assert tail.splitlines() == ["0123456789abcdef"] * 5
    assert_healthz_fast(d.socket)


def test_logs_read_across_rotations(small_logs):
    d = small_logs
    # ~5 files' worth of numbered lines, then quiet: the oldest files were dropped.
    d.apply(pod("count", "seq 1 60000; sleep 3600"))
    d.wait_running("count")
    wait_for(lambda: d.cli("logs", "count", "--tail", "1").stdout == "60000\n",
             what="all lines written")
    full = lines_of(d.cli("logs", "count").stdout)
    assert full[-1] == 60000 and full[0] > 1, "nothing rotated away?"
    assert full == list(range(full[0], 60001)), "a gap or a repeat across rotations"
    assert len(d.cli("logs", "count").stdout.encode()) <= MAX_FILES * (MAX_SIZE + CHUNK)
    tail = lines_of(d.cli("logs", "count", "--tail", "20000").stdout)
    assert tail == list(range(40001, 60001))  # spans at least two files


def test_follow_and_previous_across_rotations(small_logs):
    d = small_logs
    # Numbered lines in bursts, so -f sees several rotations; then the container exits and
    # restarts: --previous reads the first run's rotated chain.
    script = ("i=0; while [ $i -lt 40 ]; do seq $((i*1000+1)) $((i*1000+1000)); "
              "i=$((i+1)); sleep 0.05; done; exit 3")
    d.apply(pod("burst", script))
    d.wait_running("burst")
    follower = subprocess.Popen(
        [sys.executable, "-m", "tinykube.cli.main", "--socket", str(d.socket),
         "logs", "-f", "burst"], stdout=subprocess.PIPE, text=True)
    seen: list[int] = []

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            seen.append(int(line))
            if seen[-1] == 40000:
                return
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        reader.join(timeout=60)
    finally:
        follower.kill()
        follower.wait()
    assert seen and seen[-1] == 40000, seen[-5:]
    assert seen == list(range(seen[0], 40001)), "-f lost or repeated lines at a rotation"
    wait_for(lambda: (d.pod("burst")["status"]["containerStatuses"][0]["restartCount"] >= 1),
             what="a restart")
    previous = lines_of(d.cli("logs", "burst", "--previous").stdout)
    assert previous[-1] == 40000 and previous == list(range(previous[0], 40001))
    assert lines_of(d.cli("logs", "burst", "--previous", "--tail", "3").stdout) == \
        [39998, 39999, 40000]


def test_tail_of_a_big_log_keeps_the_daemon_responsive(daemon):
    """Regression: --tail read the whole file on the event loop (+500 MB per call on 200 MB;
    four calls stalled /healthz for 5 s). Default cap (10 MiB x 5): the log is ~50 MB."""
    daemon.apply(pod("big", "yes $(head -c 999 /dev/zero | tr '\\0' x) | head -n 200000; "
                            "echo last; sleep 3600"))  # 200 MB of 1000-byte lines
    daemon.wait_running("big")
    wait_for(lambda: daemon.cli("logs", "big", "--tail", "1").stdout == "last\n",
             timeout=120, what="the big log written")
    calls = [subprocess.Popen([sys.executable, "-m", "tinykube.cli.main", "--socket",
                               str(daemon.socket), "logs", "big", "--tail", "2"],
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        assert_healthz_fast(daemon.socket, samples=5, interval=0.02)
    finally:
        outputs = [c.communicate(timeout=60)[0] for c in calls]
    assert all(out.endswith("x\nlast\n") for out in outputs), [o[-20:] for o in outputs]
    directory = log_dir(daemon, "big")
    total, _ = disk_use(directory)
    assert total <= 5 * (10 * 1024 * 1024 + CHUNK), total


def test_a_busy_log_holds_whole_lines_and_a_pause_shows_an_unfinished_one(daemon):
    """While output streams in, the log ends at a line boundary (the CI run where `yes` left
    half a line at the end of `--tail 5` found this: a line written in two pieces must never
    show as its first piece); once the app pauses, an unfinished line shows as it is."""
    d = daemon
    d.apply(pod("pieces", "while :; do printf abc; printf 'def\\n'; done"))
    d.wait_running("pieces")
    wait_for(lambda: d.cli("logs", "pieces", "--tail", "1").stdout, what="output")
    tails = [d.cli("logs", "pieces", "--tail", "1").stdout for _ in range(30)]
    assert set(tails) == {"abcdef\n"}, set(tails)

    d.apply(pod("prompt", "printf 'first\\n'; printf 'no newline yet'; sleep 3600"))
    wait_for(lambda: d.cli("logs", "prompt").stdout == "first\nno newline yet",
             what="the unfinished line once the app pauses")

    # Output with no newline at all still reaches the file (in 16 KiB pieces), bounded.
    d.apply(pod("nul", "cat /dev/zero"))
    d.wait_running("nul")
    wait_for(lambda: disk_use(log_dir(d, "nul"))[0] > 1024 * 1024, what="a MiB of log")
