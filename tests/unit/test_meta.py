"""The one home of times, conditions and pod state (tinykube/model/meta.py)."""

import pytest

from tinykube.model import meta

T0 = 1_800_000_000.0


def ready_pod(since: float | None, phase: str = "Running", status: str = "True") -> dict:
    condition = {"type": "Ready", "status": status}
    if since is not None:
        condition["lastTransitionTime"] = meta.format_time(since)
    return {"metadata": {"name": "p"}, "status": {"phase": phase, "conditions": [condition]}}


@pytest.mark.parametrize("text, expected", [
    ("2027-01-15T08:00:00Z", 1_800_000_000.0),
    ("2027-01-15T08:00:00.250Z", 1_800_000_000.25),  # fractions (the three old parsers disagreed)
    ("2027-01-15T09:00:00+01:00", 1_800_000_000.0),
    ("2027-01-15T08:00:00", 1_800_000_000.0),  # no zone: UTC
    ("", None), (None, None), ("yesterday", None),
])
def test_parse_time_reads_rfc3339(text, expected):
    assert meta.parse_time(text) == expected


def test_format_and_parse_round_trip():
    assert meta.parse_time(meta.format_time(T0)) == T0


@pytest.mark.parametrize("pod, min_ready, expected", [
    (ready_pod(T0 - 10), 0, 0.0),  # ready, no minReadySeconds: available now
    (ready_pod(T0 - 10), 5, 0.0),  # ready long enough
    (ready_pod(T0 - 2), 5, 3.0),  # ready, 3 s to go
    (ready_pod(T0, status="False"), 0, None),  # not ready
    (ready_pod(None), 5, None),  # ready since an unknown time: not available (IsPodAvailable)
    ({"metadata": {}, "status": {}}, 0, None),
])
def test_available_in_one_contract(pod, min_ready, expected):
    assert meta.available_in(pod, min_ready, T0) == expected
    assert meta.is_available(pod, min_ready, T0) is (expected == 0.0)


def test_pod_state():
    deleting = {"metadata": {"deletionTimestamp": meta.format_time(T0)}, "status": {}}
    assert meta.is_being_deleted(deleting) and not meta.is_active(deleting)
    assert meta.is_terminal(ready_pod(T0, phase="Succeeded"))
    assert meta.is_running_and_ready(ready_pod(T0))
    assert not meta.is_running_and_ready(ready_pod(T0, phase="Pending"))
    assert meta.condition(ready_pod(T0), "Ready")["status"] == "True"
    assert meta.condition(ready_pod(T0), "Initialized") is None
