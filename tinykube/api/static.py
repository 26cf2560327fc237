"""The documents that describe the API rather than its objects: `/version`, discovery and
OpenAPI. One entry point for the API server's router."""

from __future__ import annotations

import json
from typing import Any

from tinykube.api import discovery, openapi


async def answer(path: str, headers: dict[str, str], send: Any) -> bool:
    """Send the document at `path` and return True, or return False if there is none."""
    if path.startswith("/openapi/"):
        data = openapi.answer(path)
        content_type = "application/json"
        if data is None:
            return False
    else:
        found = discovery.answer(path, headers.get("accept", ""))
        if found is None:
            return False
        data, content_type = json.dumps(found.body).encode(), found.content_type
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", content_type.encode()),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
    return True
