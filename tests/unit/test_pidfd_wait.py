"""Waiting for a process to exit through its pidfd (runtime.sandbox.wait_pid_exit) holds
against trio's documented spurious wake-ups of wait_readable: a stale epoll registration of a
reused fd number once woke it for a shim that still ran, the container was taken for exited
and the event loop blocked in Popen.wait() (the frozen daemon of the A/B bench)."""

from __future__ import annotations

import signal
import subprocess

import pytest
import trio

from tinykube.runtime.sandbox import reap, register_child, wait_pid_exit


def started(argv: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    """A child as the runtime starts one (Popen in a worker thread, then registered)."""
    proc = subprocess.Popen(argv)
    return proc, register_child(proc)


async def test_a_spurious_wakeup_is_not_taken_for_an_exit(monkeypatch):
    proc, start_time = started(["sleep", "60"])
    real_wait = trio.lowlevel.wait_readable
    wakeups = 0

    async def spurious_first(fd):
        nonlocal wakeups
        wakeups += 1
        if wakeups == 1:
            await trio.lowlevel.checkpoint()  # at once, as a stale registration's event
            return
        await real_wait(fd)

    monkeypatch.setattr(trio.lowlevel, "wait_readable", spurious_first)
    try:
        with trio.move_on_after(0.5):
            await wait_pid_exit(proc.pid, start_time)
            pytest.fail("wait_pid_exit returned while the process still runs")
        assert wakeups == 2 and proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        with trio.fail_after(10):
            await wait_pid_exit(proc.pid, start_time)
        assert reap(proc.pid, start_time) == 128 + signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_an_exited_process_returns_at_once_and_a_gone_one_too():
    proc, start_time = started(["true"])
    with trio.fail_after(10):
        await wait_pid_exit(proc.pid, start_time)  # exited (a zombie until reaped)
    assert reap(proc.pid, start_time) == 0
    with trio.fail_after(10):
        await wait_pid_exit(proc.pid, start_time)  # reaped: no such process any more
