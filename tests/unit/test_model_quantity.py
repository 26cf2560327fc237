"""Kubernetes quantities: cpu to millicores, memory to bytes, rounding up."""

import pytest

from tinykube.model.quantity import QuantityError, cpu_millis, memory_bytes, whole_number


@pytest.mark.parametrize("value, millis", [
    ("500m", 500), ("1", 1000), ("0.5", 500), ("2", 2000), (2, 2000), (0.25, 250),
    ("100m", 100), ("0.1m", 1), ("1.5", 1500), (".5", 500), ("0", 0), ("1k", 1_000_000),
])
def test_cpu(value, millis):
    assert cpu_millis(value) == millis


@pytest.mark.parametrize("value, size", [
    ("64Mi", 64 * 2**20), ("1Gi", 2**30), ("100M", 100_000_000), (128974848, 128974848),
    ("128974848", 128974848), ("129e6", 129_000_000), ("1k", 1000), ("1Ki", 1024),
    ("1.5Gi", 3 * 2**29), ("1E3", 1000), ("1E", 10**18), ("100m", 1), ("0", 0),
])
def test_memory(value, size):
    assert memory_bytes(value) == size


@pytest.mark.parametrize("value, message", [
    ("abc", "quantities must match the regular expression"),
    ("1Ki2", "quantities must match"),
    ("1K", "quantities must match"),  # kilo is a lower-case k
    ("1.2.3", "quantities must match"),
    ("Mi", "quantities must match"),
    ("", "quantities must match"),
    (None, "quantities must match"),
    (True, "quantities must match"),
    (float("nan"), "quantities must match"),
    ("-1", "must be greater than or equal to 0"),
    ("1e99", "exponent 99 is out of range"),
    ("9" * 70, "quantities must match"),
])
def test_memory_errors(value, message):
    with pytest.raises(QuantityError, match=message):
        memory_bytes(value)


def test_whole_number():
    assert whole_number(100) == 100
    assert whole_number("1k") == 1000
    with pytest.raises(QuantityError, match="whole number"):
        whole_number("0.5")
