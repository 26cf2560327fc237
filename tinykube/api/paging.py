"""`limit` and `continue` on lists. Items come sorted by (namespace, name); a continue token
names the last key served, and the next page starts after it. Unlike Kubernetes (which
serves every page from one snapshot), later pages show the objects as they are now."""

from __future__ import annotations

import base64
import json

from tinykube.model.errors import BadRequest


def _key(obj: dict) -> list[str]:
    meta = obj["metadata"]
    return [meta.get("namespace", ""), meta["name"]]


def page(items: list[dict], query: dict[str, str], resource_version: int
         ) -> tuple[list[dict], dict]:
    """The page of `items` the query asks for, and what to add to the list's metadata."""
    limit_text, token = query.get("limit") or "", query.get("continue") or ""
    if token:
        try:
            state = json.loads(base64.urlsafe_b64decode(token.encode()))
            after = [str(part) for part in state["after"]]
        except (ValueError, KeyError, TypeError):
            raise BadRequest("continue: Invalid value: the continue token is not valid") \
                from None
        items = [obj for obj in items if _key(obj) > after]
    if not limit_text:
        return items, {}
    try:
        limit = int(limit_text)
    except ValueError:
        raise BadRequest(f"limit: Invalid value: {limit_text!r}: must be an integer") from None
    if limit <= 0 or len(items) <= limit:
        return items, {}
    served = items[:limit]
    next_token = base64.urlsafe_b64encode(json.dumps(
        {"rv": resource_version, "after": _key(served[-1])}).encode()).decode()
    return served, {"continue": next_token, "remainingItemCount": len(items) - limit}
