"""`tinykube server`: the control plane without a node — the API server (unix socket and
TLS), and, on the elected leader only, the controllers, the scheduler and the node lifecycle
controller. Agents (`tinykube agent`) register the nodes and run the pods.

The store is the embedded SQLite store (one server); several servers share one store only
through a networked backend (etcd), where the Lease election decides who runs the
controllers.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

from .credentials import NodeCredentials
from .election import LEASE_SECONDS, LeaderElector
from .kubeletproxy import KubeletProxy
from .objects import StoreObjects

from tinykube.api.listener import WithKubeconfig, check_free, serve_tls
from tinykube.api.serviceips import DEFAULT_SERVICE_CIDR, ServiceAllocator
from tinykube.api.tls import DEFAULT_LISTEN, Listen, Pki, ensure_pki, parse_listen
from tinykube.apiserver import ApiServer, serve
from tinykube.locations import DEFAULT_ROOT, DEFAULT_RUN_DIR
from tinykube.runtime import layout
from tinykube.store.location import StoreLocation, open_store

log = logging.getLogger("tinykube.cluster.server")


@dataclass
class ServerConfig:
    root: Path = DEFAULT_ROOT
    run_dir: Path = DEFAULT_RUN_DIR
    socket: Path | None = None
    listen: Listen = field(default_factory=lambda: parse_listen(DEFAULT_LISTEN))  # type: ignore
    service_cidr: str = DEFAULT_SERVICE_CIDR
    identity: str = ""  # this server in the leader Lease ("": host name + random suffix)
    leader_lease_seconds: float = LEASE_SECONDS
    node_monitor_grace_seconds: float = 40.0
    pod_eviction_seconds: float = 300.0
    store: StoreLocation | None = None  # None: the embedded SQLite store under root
    cluster_cidr: str | None = None  # the pod range Nodes get their podCIDR slices from
    node_cidr_mask: int = 24

    @property
    def socket_path(self) -> Path:
        return self.socket or layout.socket_path(self.run_dir)


def node_token_file(pki: Pki) -> Path:
    return pki.node_token_file


def ensure_node_token(pki: Pki) -> str:
    """The join token agents present (`tinykube agent --token`), made once, kept 0600."""
    path = pki.node_token_file
    if not path.exists() or not path.read_text().strip():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            # Never starting with "-": `--token TOKEN` would read it as an option.
            f.write("tk" + secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


async def run(config: ServerConfig, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    for directory in (config.root, config.run_dir):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    check_free(config.listen)
    location = config.store or StoreLocation(sqlite_path=layout.store_path(config.root))
    async with open_store(location) as store:
        await _serve(store, config, task_status)


async def _serve(store: Any, config: ServerConfig, task_status: Any) -> None:
    from tinykube.cluster.scheduler import Scheduler
    from tinykube.controllers.manager import run_all
    from tinykube.controllers.nodelifecycle import NodeLifecycle

    identity = config.identity or f"{socket.gethostname()}-{secrets.token_hex(3)}"
    pki = await trio.to_thread.run_sync(ensure_pki, config.root, config.listen)
    await trio.to_thread.run_sync(ensure_node_token, pki)
    proxy = KubeletProxy(store, pki.kubelet_client_cert, pki.kubelet_client_key)
    api = ApiServer(store, None, ServiceAllocator(store, config.service_cidr), proxy)

    async def lead() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_all, store)
            await nursery.start(Scheduler(store).run)
            await nursery.start(NodeLifecycle(
                store, grace_seconds=config.node_monitor_grace_seconds,
                eviction_seconds=config.pod_eviction_seconds).run)
            if config.cluster_cidr:
                from tinykube.controllers.nodeipam import NodeIpam

                await nursery.start(NodeIpam(store, config.cluster_cidr,
                                             config.node_cidr_mask).run)

    elector = LeaderElector(StoreObjects(store), identity,
                            lease_seconds=config.leader_lease_seconds)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_on_signal, nursery.cancel_scope)
        await nursery.start(serve, WithKubeconfig(api, config.listen, pki), config.socket_path)
        await nursery.start(partial(serve_tls, nodes=NodeCredentials(store)), api,
                            config.listen, pki)
        await nursery.start(elector.run, lead)
        log.info("tinykube server %s serving on %s and %s (root %s); agents join with the "
                 "token in %s", identity, config.socket_path, config.listen.url, config.root,
                 node_token_file(pki))
        task_status.started()


async def stop_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("received %s: stopping", signal.Signals(signum).name)
            scope.cancel()
            return
