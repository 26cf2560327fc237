"""The claim ledger: which claims this node has seen, and which deletions it has observed.

`<root>/volumes/.claims.json`, beside the claim directories it describes:

    {"resourceVersion": 812,                       # the store's rv when last written
     "claims":  {"default/data-web-0": "<uid>"},   # every claim the store has shown us
     "deleted": {"default/old": "<uid>"}}          # tombstones: DELETED events we saw

A claim directory is removed only when its claim has a tombstone: the deletion was observed
on the store's watch, never inferred from the claim being absent (an empty, truncated or
replaced `state.db` has no claims at all; Kubernetes never deletes volume data because
metadata is missing). The resourceVersion lets start-up notice a store that went back in
time (runtime/storeguard.py). Names are DNS-1123, so the dot-file cannot clash with a
namespace directory. The legacy text ledger `.claims` (one `namespace/name` a line, no
tombstones) is read once and replaced.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("tinykube.runtime.claims")

LEDGER_NAME = ".claims.json"
LEGACY_LEDGER_NAME = ".claims"

ClaimKey = tuple[str, str]  # (namespace, claim name)


@dataclass
class ClaimLedger:
    resource_version: int = 0
    claims: dict[ClaimKey, str | None] = field(default_factory=dict)  # key -> uid
    deleted: dict[ClaimKey, str | None] = field(default_factory=dict)  # tombstones


def ledger_path(volumes: Path) -> Path:
    return Path(volumes) / LEDGER_NAME


def read_ledger(volumes: Path) -> ClaimLedger:
    """The ledger, or an empty one. A ledger that cannot be parsed is an error, not an empty
    ledger: forgetting tombstones only leaks directories, but the caller must not mistake a
    damaged file for 'this node never saw a claim'."""
    path = ledger_path(volumes)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return _read_legacy(Path(volumes) / LEGACY_LEDGER_NAME)
    return ClaimLedger(
        resource_version=int(data.get("resourceVersion") or 0),
        claims=_keyed(data.get("claims") or {}), deleted=_keyed(data.get("deleted") or {}))


def _keyed(entries: dict[str, str | None]) -> dict[ClaimKey, str | None]:
    """{"ns/name": uid} as {(ns, name): uid}, skipping keys that are not "ns/name"."""
    return {key: uid for text, uid in entries.items() if (key := _split(text)) is not None}


def write_ledger(volumes: Path, ledger: ClaimLedger) -> None:
    """Replace the ledger atomically and durably (a tombstone must be on disk before the
    directory it licenses is removed)."""
    path = ledger_path(volumes)
    tmp = path.with_name(LEDGER_NAME + ".tmp")
    data = {"resourceVersion": ledger.resource_version,
            "claims": {f"{ns}/{n}": uid for (ns, n), uid in sorted(ledger.claims.items())},
            "deleted": {f"{ns}/{n}": uid for (ns, n), uid in sorted(ledger.deleted.items())}}
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    (Path(volumes) / LEGACY_LEDGER_NAME).unlink(missing_ok=True)


def _split(text: str) -> ClaimKey | None:
    namespace, _, name = text.strip().partition("/")
    return (namespace, name) if namespace and name else None


def _read_legacy(path: Path) -> ClaimLedger:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return ClaimLedger()
    claims: dict[ClaimKey, str | None] = {}
    for line in text.splitlines():
        key = _split(line)
        if key:
            claims[key] = None
    return ClaimLedger(claims=claims)
