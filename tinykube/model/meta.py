"""Facts about objects every layer reads: the JSON shape, times, conditions, pod state.

One home for each (controllers, runtime and CLI import them from here).
"""

from __future__ import annotations

from typing import Any

# An API object, or any part of one, as JSON decodes it.
Obj = dict[str, Any]
