"""`tinykube agent`: one node of a cluster. It registers its Node, heartbeats its Lease and
runs the pods the scheduler bound to it, all through the API server (never the store).

The kubelet is the daemon's own (runtime/kubelet.py), given an `ApiStore` (a cache fed by
list + watch over HTTPS, writing status and deletions back through the API) instead of the
store, and told to run only pods bound to this node.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import trio

from .apiclient import ApiObjects, ServerPool
from .heartbeat import Heartbeat
from .informer import ApiStore
from .nodeobjects import NODE_LEASE_SECONDS, NodeFacts, host_capacity
from .nodeserver import DEFAULT_KUBELET_PORT, NodeEndpoint, serve_node_endpoint
from .routes import HostGwRoutes

from tinykube.locations import DEFAULT_ROOT, DEFAULT_RUN_DIR
from tinykube.runtime import layout

log = logging.getLogger("tinykube.cluster.agent")

# What the kubelet reads: its pods, and the claims whose directories it keeps.
WATCHED_KINDS = ("Pod", "PersistentVolumeClaim", "Node")


@dataclass
class AgentConfig:
    servers: list[str]
    token: str
    node_name: str
    pod_cidr: str | None = None  # this node's slice (None: the server's node IPAM gives one)
    cluster_cidr: str | None = None  # the whole pod range: pods reach other nodes' slices
    node_ip: str | None = None  # InternalIP: where other nodes route this node's pods
    ca_file: Path | None = None
    root: Path = DEFAULT_ROOT
    run_dir: Path = DEFAULT_RUN_DIR
    bridge: str = "tk0"
    cgroup_parent: str | None = None
    cgroup_subtree: str = "tinykube"
    lease_seconds: int = NODE_LEASE_SECONDS
    kubelet_port: int = DEFAULT_KUBELET_PORT  # logs/exec for the servers (0: none)


async def run(config: AgentConfig, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    from .server import stop_on_signal

    from tinykube.api.tls import ensure_self_signed
    from tinykube.netns.podnet import PodNetwork
    from tinykube.runtime.cgroups import detect_pinned
    from tinykube.runtime.hostreset import remove_pid_file, write_pid_file
    from tinykube.runtime.kubelet import Kubelet

    for directory in (config.root, config.run_dir):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    objects = ApiObjects(ServerPool(config.servers, config.token, config.ca_file))
    password = await trio.to_thread.run_sync(node_password, layout.pki_dir(config.root))
    await _exchange_join_token(objects, config.node_name, password)
    objects.rejoin = partial(_exchange_join_token, objects, config.node_name, password)
    api_store = ApiStore(objects, WATCHED_KINDS)
    api_store.host = config.node_name
    cpu, memory = host_capacity()
    heartbeat = Heartbeat(objects, NodeFacts(config.node_name, address=config.node_ip,
                                             pod_cidr=config.pod_cidr, cpu_millis=cpu,
                                             memory_bytes=memory),
                          lease_seconds=config.lease_seconds)
    pod_cidr = config.pod_cidr or await _allocated_cidr(heartbeat)
    network = PodNetwork(layout.network_dir(config.root), bridge=config.bridge,
                         cidr=pod_cidr, cluster_cidr=config.cluster_cidr)
    cgroups = detect_pinned(config.run_dir, config.cgroup_parent, subtree=config.cgroup_subtree)
    address = config.node_ip or network.gateway
    serves_logs = bool(config.kubelet_port and config.ca_file)
    if config.kubelet_port and not config.ca_file:
        log.warning("node %s: no --certificate-authority, so no log/exec endpoint (it admits "
                    "only clients the cluster's CA signed)", config.node_name)
    heartbeat.facts = replace(heartbeat.facts, address=address, pod_cidr=pod_cidr,
                              kubelet_port=config.kubelet_port if serves_logs else None)
    kubelet = Kubelet(api_store, config.root, config.run_dir, network, cgroups,  # type: ignore[arg-type]
                      hidden_paths=(str(DEFAULT_ROOT), str(DEFAULT_RUN_DIR)),
                      node_name=config.node_name, run_unbound=False)
    write_pid_file(config.run_dir)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_on_signal, nursery.cancel_scope)
            await network.ensure_bridge()
            if config.cluster_cidr:
                await network.route_services()  # the bridge forwards to the other slices
            await nursery.start(heartbeat.run)
            await nursery.start(api_store.run)
            await nursery.start(kubelet.run)
            if serves_logs:
                assert config.ca_file is not None
                cert, key = await trio.to_thread.run_sync(
                    ensure_self_signed, layout.pki_dir(config.root), config.node_name, address)
                await nursery.start(serve_node_endpoint,
                                    NodeEndpoint(api_store, kubelet, config.node_name),
                                    address, config.kubelet_port, cert, key, config.ca_file)
            if config.cluster_cidr:
                await nursery.start(HostGwRoutes(api_store, config.node_name).run)
            log.info("tinykube agent: node %s joined %s (pods %s)", config.node_name,
                     ",".join(config.servers), pod_cidr)
            task_status.started()
    finally:
        remove_pid_file(config.run_dir)
        network.close()


def node_password(directory: Path) -> str:
    """This agent's node password (k3s' node-password): made once, kept 0600 under its root,
    so a restart joins again under the same node name and another machine cannot."""
    import os
    import secrets

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / "node-password"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return path.read_text().strip()


async def _exchange_join_token(objects: ApiObjects, node_name: str, password: str) -> None:
    """Trade the join token for this node's own credential, as a k3s agent joins: from
    here on the agent may do only what a node may (tinykube/api/nodeauthz.py)."""
    from tinykube.api.auth import EXCHANGE_PATH
    from tinykube.client import DaemonUnreachable
    from tinykube.model.errors import ApiError

    while True:
        try:
            issued = await objects.call("POST", EXCHANGE_PATH, {"nodeName": node_name,
                                                                "nodePassword": password},
                                        as_joining=True)
            objects.pool.token = str(issued["token"])
            log.info("node %s: exchanged the join token for its node credential", node_name)
            return
        except (DaemonUnreachable, OSError) as e:
            log.warning("node %s: joining: %s; retrying", node_name, e)
        except ApiError as e:
            if e.code < 500:
                raise SystemExit(f"node {node_name}: the server refused the join token: "
                                 f"{e}") from None
            log.warning("node %s: joining: %s; retrying", node_name, e)
        await trio.sleep(0.5)


async def _allocated_cidr(heartbeat: Heartbeat) -> str:
    """Register the Node without a slice and wait for the server's node IPAM to give one."""
    from tinykube.client import DaemonUnreachable
    from tinykube.model.errors import ApiError

    logged = False
    while True:
        try:
            if heartbeat.node is None:
                heartbeat.node = await heartbeat.register()
            node = await heartbeat.objects.get("Node", "", heartbeat.facts.name)
            cidr = ((node or {}).get("spec") or {}).get("podCIDR")
            if cidr:
                return str(cidr)
            if node is None:
                heartbeat.node = None  # deleted meanwhile: register again
        except (ApiError, DaemonUnreachable, OSError) as e:
            log.warning("registering node %s: %s; retrying", heartbeat.facts.name, e)
        if not logged:
            log.info("node %s: waiting for the server to allocate its podCIDR "
                     "(server --cluster-cidr)", heartbeat.facts.name)
            logged = True
        await trio.sleep(0.5)


def main(config: AgentConfig | Any, runner: Any = None) -> int:
    import os

    logging.basicConfig(level=os.environ.get("TINYKUBE_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    trio.run(runner or run, config)
    return 0
