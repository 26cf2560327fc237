"""Table responses (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): what
`kubectl get` prints, with the same columns as `tinykube get` (`tinykube.cli.printing`);
its wide columns are `priority: 1`, which kubectl shows only with `-o wide`.
"""

from __future__ import annotations

from typing import Any

from tinykube.api.discovery import media_types
from tinykube.cli import printing
from tinykube.model.kinds import find

TABLE_CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def wanted(accept: str | None) -> bool:
    """The client prefers a Table (kubectl asks Table first, plain JSON as the fallback)."""
    for media in media_types(accept or ""):
        if media.get("as") == "Table" and media.get("g") == "meta.k8s.io" and \
                media.get("v") in ("v1", "v1beta1"):
            return True
        if media[""] in ("application/json", "*/*"):
            return False
    return False


def _column(name: str, priority: int = 0) -> dict:
    return {"name": name.title() if name != "NAME" else "Name", "type": "string",
            "format": "name" if name == "NAME" else "", "description": name.lower(),
            "priority": priority}


def _wide_columns(kind: str) -> tuple[str, ...]:
    info = find(kind)
    return info.wide_columns if info is not None else ()


def columns(kind: str) -> list[dict]:
    if kind == "Event":
        headers, _ = printing.COLUMNS["Event"]
        return [_column(h) for h in headers]
    headers, _ = printing.COLUMNS.get(kind, ([], None))
    after, _ = printing.AFTER_AGE.get(kind, ([], None))
    return ([_column("NAME")] + [_column(h) for h in headers] + [_column("AGE")]
            + [_column(h) for h in after] + [_column(h, 1) for h in _wide_columns(kind)])


def _cells(obj: dict) -> list[Any]:
    kind = obj["kind"]
    _, row_of = printing.COLUMNS.get(kind, ([], lambda o: []))
    if kind == "Event":
        return list(row_of(obj))
    meta = obj["metadata"]
    _, after_age = printing.AFTER_AGE.get(kind, ([], lambda o: []))
    return ([meta["name"], *row_of(obj), printing.age(meta.get("creationTimestamp"))]
            + after_age(obj) + printing._wide(obj)[1])


def _row_object(obj: dict, include: str) -> dict | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"]}


def table(kind: str, objects: list[dict], list_meta: dict | None = None, *,
          include: str = "Metadata", headers: bool = True) -> dict:
    """A meta.k8s.io/v1 Table; `include` is the request's includeObject (None, Object,
    Metadata); `headers=False` leaves the column definitions out (watch events after the
    first, as Kubernetes does)."""
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": _cells(obj)}
        found = _row_object(obj, include)
        if found is not None:
            row["object"] = found
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta or {},
            "columnDefinitions": columns(kind) if headers else [], "rows": rows}


def of_response(kind: str, body: dict, include: str | None) -> dict:
    """A list or single object answer as a Table."""
    include = include or "Metadata"
    if body.get("kind", "").endswith("List") and "items" in body:
        return table(kind, body["items"], body.get("metadata"), include=include)
    return table(kind, [body], {"resourceVersion": body["metadata"].get("resourceVersion", "")},
                 include=include)
