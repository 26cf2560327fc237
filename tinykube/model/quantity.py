"""Kubernetes resource quantities: `500m`, `0.5`, `64Mi`, `129e6`, `1k`.

The grammar is apimachinery's `resource.Quantity`: a signed decimal number followed by a
binary-SI suffix (Ki Mi Gi Ti Pi Ei), a decimal-SI suffix (n u m "" k M G T P E) or a
decimal exponent (`e3`, `E-2`). We parse into an exact `Decimal` and convert, rounding up
as Kubernetes' `MilliValue()`/`Value()` do, so `0.1m` cpu is 1 millicore, never 0.

YAML numbers (`cpu: 2`, `cpu: 0.5`, `memory: 1048576`) are accepted like strings.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9),
            "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18)}
_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?")

# Anything larger is a typo, not a machine; it also keeps Decimal arithmetic cheap.
_MAX_EXPONENT = 30
_FORMAT_HINT = ("quantities must match the regular expression "
                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


class QuantityError(ValueError):
    """A quantity that does not parse or is out of range; str() is the user message."""


def parse_quantity(value: object) -> Decimal:
    """The exact value of a quantity (a str, int or float); `QuantityError` otherwise."""
    if isinstance(value, bool):
        raise QuantityError(_FORMAT_HINT)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(_FORMAT_HINT)
        return Decimal(repr(value))
    if not isinstance(value, str):
        raise QuantityError(_FORMAT_HINT)
    text = value.strip()
    match = _QUANTITY.fullmatch(text) if len(text) <= 64 else None
    if match is None:
        raise QuantityError(_FORMAT_HINT)
    try:
        number = Decimal(match["number"])
    except InvalidOperation:
        raise QuantityError(_FORMAT_HINT) from None
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    exponent = int(suffix[1:])
    if abs(exponent) > _MAX_EXPONENT:
        raise QuantityError(f"exponent {exponent} is out of range")
    return number.scaleb(exponent)


def _non_negative(value: object) -> Decimal:
    amount = parse_quantity(value)
    if amount < 0:
        raise QuantityError("must be greater than or equal to 0")
    if amount > Decimal(2) ** 63:
        raise QuantityError("is too large")
    return amount


def cpu_millis(value: object) -> int:
    """CPU quantity -> millicores, rounded up: `500m` -> 500, `0.5` -> 500, `2` -> 2000."""
    return math.ceil(_non_negative(value) * 1000)


def memory_bytes(value: object) -> int:
    """Memory quantity -> bytes, rounded up: `64Mi` -> 67108864, `1k` -> 1000."""
    return math.ceil(_non_negative(value))


def whole_number(value: object) -> int:
    """A count such as the pids limit: a quantity that must be a whole number (`100`, `1k`)."""
    amount = _non_negative(value)
    if amount != amount.to_integral_value():
        raise QuantityError("must be a whole number")
    return int(amount)


