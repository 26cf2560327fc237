"""`--store` and the etcd TLS flags, for every command that runs an API server."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tinykube.store.location import StoreLocation


def add_store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None, metavar="sqlite:PATH|etcd://HOST:PORT[,...]",
                   help="where objects are kept (default: the embedded SQLite store under "
                        "--root); etcd v3 lets several servers share one store")
    p.add_argument("--etcd-cafile", default=None, metavar="FILE",
                   help="CA bundle that signed the etcd servers' certificates (HTTPS)")
    p.add_argument("--etcd-certfile", default=None, metavar="FILE",
                   help="client certificate for etcd (HTTPS)")
    p.add_argument("--etcd-keyfile", default=None, metavar="FILE",
                   help="the client certificate's key")
    p.add_argument("--etcd-compaction-interval", default=None, type=float, metavar="SECONDS",
                   help="how often etcd's history is compacted (default 300, as "
                        "kube-apiserver's 5m; 0: never)")


def store_location(args: argparse.Namespace, default_path: Path) -> StoreLocation:
    """The store the flags name; a `StoreLocationError` names the flag that is wrong."""
    # Imported here: the store package loads trio, which other commands need not load.
    from tinykube.store.location import EtcdTLS, StoreLocationError, parse_store

    tls = EtcdTLS(args.etcd_cafile, args.etcd_certfile, args.etcd_keyfile)
    for flag, path in (("--etcd-cafile", tls.cafile), ("--etcd-certfile", tls.certfile),
                       ("--etcd-keyfile", tls.keyfile)):
        if path and not Path(path).is_file():
            raise StoreLocationError(f"{flag}: {path}: no such file")
    if args.etcd_compaction_interval is None:
        return parse_store(args.store, default_path=default_path, tls=tls)
    return parse_store(args.store, default_path=default_path, tls=tls,
                       compaction_interval=args.etcd_compaction_interval)
