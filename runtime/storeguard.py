"""Refuse to run on a store that has lost what this node's own state still names.

Pod records (`<run_dir>/pods/<uid>.json`) and the claim ledger (`<root>/volumes/.claims.json`)
outlive the daemon and name objects of the store. If `state.db` is emptied, truncated to zero
bytes, replaced by a fresh one (`--root` pointed elsewhere next to old records) or restored
from an older copy, a daemon that believed it would tear every pod down as an orphan. So the
node writes down the store's resourceVersion (a counter that only grows, kept in the store's
own transactions) beside its records: in the ledger and in `<run_dir>/store-mark.json`.

The rule, at start, before anything is torn down: the store is **lost** when both
  1. its resourceVersion is lower than the highest one the node wrote down (it went back in
     time), and
  2. at least one pod record or ledger claim names an object the store does not have.
Then the daemon logs an ERROR naming what is missing and refuses to start (`StoreLost`),
touching nothing. `--accept-empty-store` starts anyway: pods the store lacks are torn down as
orphans (their processes and pod directories), and every claim directory is kept (the
runtime never removes one it did not see deleted, runtime/claims.py).

Condition 2 keeps a power cut, which may cost the store its last unsynced status writes
(the runtime's own, re-derived anyway), from blocking a restart; condition 1 keeps a crash
between a pod's removal and its record's clean-up (an ordinary orphan) from looking like loss.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from . import layout, records
from .claimledger import read_ledger

log = logging.getLogger("tinykube.runtime.storeguard")



class StoreLost(RuntimeError):
    """The store has lost objects this node's records name; the message says which."""


def write_mark(run_dir: Path, root: Path, resource_version: int) -> None:
    path = layout.store_mark(run_dir)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"root": str(root), "resourceVersion": resource_version}))
    os.replace(tmp, path)


def read_mark(run_dir: Path) -> int:
    try:
        return int(json.loads(layout.store_mark(run_dir).read_text())["resourceVersion"])
    except FileNotFoundError:
        return 0
    except (ValueError, KeyError, TypeError) as e:
        log.warning("%s is unreadable (%s); ignoring it", layout.store_mark(run_dir), e)
        return 0


def check_store(store: Any, root: Path, run_dir: Path, *, accept_loss: bool = False) -> None:
    """Raise StoreLost when the store went back in time and lost objects this node's records
    name (see the module docstring); with `accept_loss`, log the same ERROR and carry on."""
    ledger = read_ledger(layout.claims_dir(root))
    noted = max(ledger.resource_version, read_mark(run_dir))
    current = store.resource_version
    if current >= noted:
        return
    missing_pods = []
    for record in records.list_records(run_dir):
        pod = store.try_get("Pod", record.namespace, record.name)
        if pod is None or pod["metadata"].get("uid") != record.uid:
            missing_pods.append(f"{record.namespace}/{record.name}")
    missing_claims = [f"{ns}/{name}" for ns, name in sorted(ledger.claims)
                      if store.try_get("PersistentVolumeClaim", ns, name) is None]
    if not missing_pods and not missing_claims:
        return
    message = (
        f"the store {layout.store_path(root)} is at resourceVersion {current}, but this "
        f"node recorded resourceVersion {noted}: it has lost objects that the node's records "
        f"still name ({_summary('pods', missing_pods)}; "
        f"{_summary('claims with data under ' + str(layout.claims_dir(root)), missing_claims)})."
        " Nothing was removed. Restore state.db, or start with --accept-empty-store to tear "
        "down those pods and keep every claim directory.")
    log.error("%s", message)
    if not accept_loss:
        raise StoreLost(message)
    log.error("--accept-empty-store given: starting on this store anyway")


def _summary(what: str, names: list[str]) -> str:
    shown = ", ".join(names[:5]) + (f", … ({len(names)} in all)" if len(names) > 5 else "")
    return f"{len(names)} {what}" + (f": {shown}" if names else "")
