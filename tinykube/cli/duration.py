"""Go-style durations as kubectl takes them: `90s`, `2m`, `1h30m`, `500ms`, or bare seconds."""

from __future__ import annotations

import re

from tinykube.cli.common import UsageError

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise UsageError(f'invalid duration "{text}" (use e.g. 30s, 2m, 1h)')
    return total
