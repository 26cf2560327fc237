"""Crash back-off: the first restart at once, then 10 s doubling to 300 s, reset after 10
minutes of clean running (the kubelet's doBackOff)."""

from tinykube.runtime.backoff import BackoffPolicy, CrashBackoff


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def crash_after(backoff, clock, ran_for):
    backoff.started()
    clock.now += ran_for
    return backoff.exited()


def test_doubles_and_caps():
    clock = FakeClock()
    backoff = CrashBackoff(clock=clock)
    delays = [crash_after(backoff, clock, 1) for _ in range(8)]
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300]


def test_resets_after_ten_minutes_up():
    clock = FakeClock()
    backoff = CrashBackoff(clock=clock)
    for _ in range(5):
        crash_after(backoff, clock, 1)
    assert crash_after(backoff, clock, 599) == 160
    assert crash_after(backoff, clock, 600) == 0
    assert crash_after(backoff, clock, 1) == 10


def test_policy_is_injectable():
    clock = FakeClock()
    backoff = CrashBackoff(BackoffPolicy(initial=0.1, cap=0.4, reset_after=5), clock=clock)
    assert [crash_after(backoff, clock, 0) for _ in range(5)] == [0, 0.1, 0.2, 0.4, 0.4]
