"""Where the store lives: `--store sqlite:PATH | etcd://HOST:PORT[,HOST:PORT…]`, and opening it.

The default is the embedded SQLite store under the daemon's root. etcd's TLS files are
kube-apiserver's flags (`--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`); given any,
the endpoints are spoken to over HTTPS.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .base import Store

from tinykube.model.errors import ApiError

# How often etcd's history is compacted: kube-apiserver's --etcd-compaction-interval default.
DEFAULT_COMPACTION_SECONDS = 300.0

_ENDPOINT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


@dataclass(frozen=True)
class EtcdTLS:
    """kube-apiserver's --etcd-cafile / --etcd-certfile / --etcd-keyfile."""

    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.cafile or self.certfile)

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.cafile)
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile)
        return context


class StoreUnavailable(ApiError):
    """503: no etcd endpoint answered (Kubernetes answers an unreachable etcd with a server
    error too; the client retries)."""

    code = 503
    reason = "ServiceUnavailable"


class StoreLocationError(ValueError):
    """A `--store` value that names no store; the message says which part and why."""


@dataclass(frozen=True)
class StoreLocation:
    sqlite_path: Path | None = None  # the embedded store (the default: None for both)
    etcd_endpoints: tuple[str, ...] = ()
    etcd_tls: EtcdTLS = field(default_factory=EtcdTLS)
    etcd_compaction_interval: float = DEFAULT_COMPACTION_SECONDS  # 0: never

    @property
    def is_etcd(self) -> bool:
        return bool(self.etcd_endpoints)

    def describe(self) -> str:
        if self.is_etcd:
            scheme = "https" if self.etcd_tls.enabled else "http"
            return f"etcd {','.join(f'{scheme}://{e}' for e in self.etcd_endpoints)}"
        return f"sqlite {self.sqlite_path}"


def parse_store(value: str | None, *, default_path: Path, tls: EtcdTLS | None = None,
                compaction_interval: float = DEFAULT_COMPACTION_SECONDS) -> StoreLocation:
    """`--store`'s value (None or "": SQLite at `default_path`)."""
    tls = tls or EtcdTLS()
    if tls.keyfile and not tls.certfile:
        raise StoreLocationError("--etcd-keyfile: needs --etcd-certfile (the client "
                                 "certificate the key belongs to)")
    if not value:
        return StoreLocation(sqlite_path=default_path)
    if value.startswith("sqlite:"):
        path = value[len("sqlite:"):]
        if not path:
            raise StoreLocationError("--store: sqlite: needs a path, e.g. sqlite:/var/lib/"
                                     "tinykube/state.db")
        return StoreLocation(sqlite_path=Path(path))
    if value.startswith("etcd://"):
        endpoints = tuple(e.strip() for e in value[len("etcd://"):].rstrip("/").split(","))
        for endpoint in endpoints:
            match = _ENDPOINT.match(endpoint)
            if not match or not 0 < int(match.group(2)) < 65536:
                raise StoreLocationError(
                    f"--store: {endpoint!r} is not HOST:PORT (etcd://HOST:PORT[,HOST:PORT…])")
        if compaction_interval < 0:
            raise StoreLocationError("--etcd-compaction-interval: must be 0 (never) or more "
                                     "seconds")
        return StoreLocation(etcd_endpoints=endpoints, etcd_tls=tls,
                             etcd_compaction_interval=compaction_interval)
    raise StoreLocationError(f"--store: {value!r}: expected sqlite:PATH or "
                             "etcd://HOST:PORT[,HOST:PORT…]")


@asynccontextmanager
async def open_store(location: StoreLocation) -> AsyncIterator[Store]:
    """The store at `location`, open (and, for etcd, followed) until the block ends."""
    if location.is_etcd:
        from .etcd import EtcdStore

        async with EtcdStore.connect(
                list(location.etcd_endpoints), location.etcd_tls,
                compaction_interval=location.etcd_compaction_interval) as store:
            yield store
        return
    from .sqlite import SqliteStore

    assert location.sqlite_path is not None
    sqlite = SqliteStore(location.sqlite_path)
    try:
        yield sqlite
    finally:
        sqlite.close()
