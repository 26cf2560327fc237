"""The daemon: wires the store, the API server, the controllers and the node under one nursery.

Stopping the daemon (SIGTERM, SIGINT) cancels that nursery. Cancellation stops supervision
only: pods keep running, as they do when a kubelet or containerd restarts, and the next start
re-adopts them.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from tinykube.api.listener import ListenError, WithKubeconfig, check_free, serve_tls
from tinykube.api.serviceips import DEFAULT_SERVICE_CIDR, ServiceAllocator
from tinykube.api.tls import DEFAULT_LISTEN, Listen, ensure_pki, parse_listen
from tinykube.apiserver import ApiServer, serve
from tinykube.locations import DEFAULT_ROOT, DEFAULT_RUN_DIR
from tinykube.runtime import layout
from tinykube.store import Store
from tinykube.store.location import StoreLocation, StoreUnavailable, open_store

if TYPE_CHECKING:
    from tinykube.netns.podnet import PodNetwork

log = logging.getLogger("tinykube.daemon")



@dataclass
class DaemonConfig:
    root: Path = DEFAULT_ROOT
    run_dir: Path = DEFAULT_RUN_DIR
    socket: Path | None = None
    bridge: str = "tk0"
    cidr: str = "10.88.0.0/16"
    cgroup_parent: str | None = None
    cgroup_subtree: str = "tinykube"
    accept_empty_store: bool = False  # start on a store that lost what records name
    container_log_max_bytes: int = 10 * 1024 * 1024  # kubelet's containerLogMaxSize
    container_log_max_files: int = 5  # kubelet's containerLogMaxFiles
    # The TLS listener beside the unix socket (None: none).
    listen: Listen | None = parse_listen(DEFAULT_LISTEN)  # noqa: RUF009 - frozen, safe to share
    pod_max_pids: int | None = 4096  # None: no pod-level pids limit
    service_cidr: str = DEFAULT_SERVICE_CIDR
    service_proxy: bool = True  # nftables rules for ClusterIPs and NodePorts
    cluster_dns: bool = True  # a DNS server on the bridge's gateway address, port 53
    dns_upstream: str = "host"  # names outside the cluster: host | none | IP[:PORT]
    store: StoreLocation | None = None  # None: the embedded SQLite store under root
    warm_sandboxes: int = 0  # pre-made pod sandboxes (runtime/warmpool.py); 0: none
    node_name: str = ""  # this node's Node object ("": from the host name)

    @property
    def socket_path(self) -> Path:
        return self.socket or layout.socket_path(self.run_dir)


def network_for(config: DaemonConfig) -> PodNetwork:
    from tinykube.netns.podnet import PodNetwork

    return PodNetwork(layout.network_dir(config.root), bridge=config.bridge, cidr=config.cidr,
                      service_cidr=config.service_cidr if config.service_proxy else None)


async def run(config: DaemonConfig, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    for directory in (config.root, config.run_dir):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    location = config.store or StoreLocation(sqlite_path=layout.store_path(config.root))
    async with open_store(location) as store:
        await _run_on(store, location, config, task_status)


async def _run_on(store: Store, location: StoreLocation, config: DaemonConfig,
                  task_status) -> None:
    from tinykube.controllers.manager import run_all
    from tinykube.runtime.cgroups import detect_pinned
    from tinykube.runtime.hostreset import remove_pid_file, write_pid_file
    from tinykube.runtime.kubelet import Kubelet
    from tinykube.runtime.storeguard import check_store

    # Before anything is torn down as an orphan (runtime/storeguard.py).
    check_store(store, config.root, config.run_dir, accept_loss=config.accept_empty_store)
    if config.listen is not None:  # before any host resource is made
        check_free(config.listen)
    network = network_for(config)
    await network.ensure_bridge()
    dns_sockets = None
    if config.cluster_dns:  # bound now: a taken port 53 is a one-line error, like --listen
        from tinykube.services.dnsserver import bind_sockets

        try:
            dns_sockets = await bind_sockets(network.gateway)
        except OSError as e:
            network.close()
            raise ListenError(f"cluster DNS: cannot listen on {network.gateway}:53 ({e}); "
                              "stop what uses it or run with --no-cluster-dns") from None
    cgroups = detect_pinned(config.run_dir, config.cgroup_parent, subtree=config.cgroup_subtree)
    cgroups.pod_pids_limit = config.pod_max_pids
    # Hidden from containers besides this daemon's root and run dir: its socket, and the
    # default locations (where another daemon on this host keeps its state).
    hidden = (str(config.socket_path), str(DEFAULT_ROOT), str(DEFAULT_RUN_DIR))
    node_name = config.node_name or default_node_name()
    kubelet = Kubelet(store, config.root, config.run_dir, network, cgroups,
                      hidden_paths=hidden, node_name=node_name,
                      cluster_dns=network.gateway if config.cluster_dns else None,
                      log_max_bytes=config.container_log_max_bytes,
                      log_max_files=config.container_log_max_files,
                      warm_sandboxes=config.warm_sandboxes)
    api = ApiServer(store, kubelet, ServiceAllocator(store, config.service_cidr))
    write_pid_file(config.run_dir)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
            # The Node and its Lease before the API answers (a few ms): a client that sees the
            # daemon up also sees its node.
            await nursery.start(_heartbeat(store, node_name, network, config).run)
            # The API first: clients need not wait while the node re-adopts hundreds of pods.
            pki = None
            if config.listen is not None:
                pki = await trio.to_thread.run_sync(ensure_pki, config.root, config.listen)
            await nursery.start(serve, WithKubeconfig(api, config.listen, pki),
                                config.socket_path)
            if config.listen is not None and pki is not None:
                await nursery.start(serve_tls, api, config.listen, pki)
            await nursery.start(kubelet.run)
            await nursery.start(run_all, store)
            await _start_services(nursery, config, store, network, dns_sockets)
            log.info("tinykube is serving on %s%s (root %s, store %s)", config.socket_path,
                     f" and {config.listen.url}" if config.listen else "", config.root,
                     location.describe())
            task_status.started()
    finally:
        remove_pid_file(config.run_dir)
        network.close()
        log.info("tinykube stopped; pods keep running until the next start re-adopts them")


def default_node_name() -> str:
    """The host name, made a valid Node name (lower case, DNS-1123 characters)."""
    name = re.sub(r"[^a-z0-9.-]+", "-", socket.gethostname().lower()).strip("-.")
    return name or "localhost"


def _heartbeat(store: Store, node_name: str, network: PodNetwork, config: DaemonConfig):
    from tinykube.cluster.heartbeat import Heartbeat
    from tinykube.cluster.nodeobjects import CONTROL_PLANE_ROLE, NodeFacts, host_capacity
    from tinykube.cluster.objects import StoreObjects

    cpu, memory = host_capacity()
    facts = NodeFacts(node_name, address=network.gateway, pod_cidr=config.cidr,
                      cpu_millis=cpu, memory_bytes=memory, labels={CONTROL_PLANE_ROLE: ""})
    return Heartbeat(StoreObjects(store), facts)


async def _start_services(nursery: trio.Nursery, config: DaemonConfig, store: Store,
                          network, dns_sockets) -> None:
    """The service proxy and cluster DNS (after the kubelet made the bridge they use)."""
    from tinykube.services.dnsserver import DnsServer, parse_upstream
    from tinykube.services.proxy import ServiceProxy
    from tinykube.services.proxyrules import NetworkFacts

    if config.service_proxy:
        facts = NetworkFacts(config.bridge, network.cidr, (network.gateway, "127.0.0.1"))
        await nursery.start(ServiceProxy(store, facts, network.route_services).run)
    if dns_sockets is not None:
        await nursery.start(DnsServer(store, network.gateway,
                                      upstream=parse_upstream(config.dns_upstream)).run,
                            dns_sockets)


async def _stop_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("received %s: stopping the daemon (pods keep running)",
                     signal.Signals(signum).name)
            scope.cancel()
            return


def main(config: DaemonConfig) -> int:
    logging.basicConfig(level=os.environ.get("TINYKUBE_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        log.error("tinykube daemon needs root (namespaces, cgroups, network links)")
        return 1
    from tinykube.runtime.storeguard import StoreLost

    try:
        trio.run(run, config)
    except StoreLost:
        return 2  # already logged at ERROR with what is missing and what to do
    except (ListenError, StoreUnavailable) as e:
        log.error("%s", e)
        return 1
    return 0
