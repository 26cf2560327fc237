"""The object store: one interface (`Store`, in base.py), two backends.

- `sqlite.SqliteStore`: the embedded store, the default (`--store sqlite:PATH`).
- `etcd.EtcdStore`: etcd v3 (`--store etcd://HOST:PORT[,HOST:PORT…]`), which several API
  servers can share; each keeps its cache fed by an etcd watch.

`open_store` (in location.py) turns a `--store` value into one of them.
"""

from .base import (
    ADDED,
    DELETED,
    HISTORY_BYTES,
    HISTORY_LIMIT,
    MODIFIED,
    Key,
    Store,
    Watch,
    WatchEvent,
    clone,
    object_key,
)
from .sqlite import DiskReserve, SqliteStore

__all__ = ["ADDED", "DELETED", "HISTORY_BYTES", "HISTORY_LIMIT", "MODIFIED", "DiskReserve", "Key",
           "SqliteStore", "Store", "Watch", "WatchEvent", "clone", "object_key"]
