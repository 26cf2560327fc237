"""`tinykube server` and `tinykube agent`: the control plane and a node of a cluster
(tinykube/cluster/). `tinykube daemon` stays the all-in-one mode."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tinykube.cli.storeflags import add_store_arguments, store_location
from tinykube.client import Client
from tinykube.locations import DEFAULT_ROOT, DEFAULT_RUN_DIR


def register(commands: argparse._SubParsersAction) -> None:
    from tinykube.api.tls import DEFAULT_LISTEN

    s = commands.add_parser("server", help="run a cluster's control plane: API, controllers, "
                                           "scheduler (leader-elected)")
    s.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    s.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    s.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help=f"TLS listener for agents, kubectl and clients (default {DEFAULT_LISTEN})")
    s.add_argument("--service-cidr", default="10.96.0.0/16")
    s.add_argument("--cluster-cidr", default=None,
                   help="pod range: each Node without a podCIDR gets the next free slice")
    s.add_argument("--node-cidr-mask-size", type=int, default=24,
                   help="the slices' prefix length (24)")
    s.add_argument("--identity", default="", help="this server's name in the leader Lease")
    s.add_argument("--node-monitor-grace-period", type=_seconds, default=40.0, metavar="SECONDS",
                   help="a node whose Lease is not renewed for this long turns NotReady (40)")
    s.add_argument("--pod-eviction-timeout", type=_seconds, default=300.0, metavar="SECONDS",
                   help="then its pods are deleted after this long (300)")
    s.add_argument("--leader-elect-lease-duration", type=_seconds, default=15.0,
                   metavar="SECONDS", help="a silent leader is replaced after this long (15)")
    add_store_arguments(s)
    s.set_defaults(handler=server)

    a = commands.add_parser("agent", help="run a cluster node: its pods, through the API")
    a.add_argument("--server", required=True, metavar="URL[,URL...]",
                   help="the servers' URLs, https://HOST:PORT (the next is used when one fails)")
    a.add_argument("--token", default=os.environ.get("TINYKUBE_TOKEN"),
                   help="the join token (the server's <root>/pki/node.token; or $TINYKUBE_TOKEN)")
    a.add_argument("--certificate-authority", type=Path, default=None, metavar="FILE",
                   help="the server's CA certificate (<root>/pki/ca.crt on the server)")
    a.add_argument("--node-name", required=True)
    a.add_argument("--pod-cidr", default=None,
                   help="this node's slice of the pod range (default: the one the server's "
                        "--cluster-cidr allocates to its Node)")
    a.add_argument("--cluster-cidr", default=None,
                   help="the whole pod range (all nodes' slices): pods reach other nodes' pods")
    a.add_argument("--node-ip", default=None, help="address other nodes reach this node by")
    a.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    a.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    a.add_argument("--bridge", default="tk0")
    a.add_argument("--cgroup-subtree", default="tinykube")
    a.add_argument("--node-lease-seconds", type=int, default=40)
    a.add_argument("--kubelet-port", type=int, default=10250, metavar="PORT",
                   help="the node's log/exec endpoint for the servers, on --node-ip (10250; "
                        "0: none)")
    a.set_defaults(handler=agent)


def _seconds(text: str) -> float:
    try:
        value = float(text.rstrip("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0")
    return value


def server(args: argparse.Namespace, client: Client) -> int:
    from tinykube.api.tls import parse_listen
    from tinykube.cluster.agent import main
    from tinykube.cluster.server import ServerConfig, run
    from tinykube.runtime import layout

    listen = parse_listen(args.listen)
    if listen is None:
        raise SystemExit("error: --listen: a server needs a TLS listener for its agents")
    return main(ServerConfig(
        root=args.root, run_dir=args.run_dir,
        socket=Path(args.socket) if args.socket else None, listen=listen,
        service_cidr=args.service_cidr, identity=args.identity,
        leader_lease_seconds=args.leader_elect_lease_duration,
        node_monitor_grace_seconds=args.node_monitor_grace_period,
        pod_eviction_seconds=args.pod_eviction_timeout,
        cluster_cidr=args.cluster_cidr, node_cidr_mask=args.node_cidr_mask_size,
        store=store_location(args, layout.store_path(args.root))), run)


def agent(args: argparse.Namespace, client: Client) -> int:
    from tinykube.cluster.agent import AgentConfig, main

    if not args.token:
        raise SystemExit("error: --token (or $TINYKUBE_TOKEN) is required")
    return main(AgentConfig(
        servers=[u.strip() for u in args.server.split(",") if u.strip()], token=args.token,
        node_name=args.node_name,
        pod_cidr=args.pod_cidr, cluster_cidr=args.cluster_cidr, node_ip=args.node_ip,
        ca_file=args.certificate_authority,
        root=args.root, run_dir=args.run_dir, bridge=args.bridge,
        cgroup_subtree=args.cgroup_subtree, lease_seconds=args.node_lease_seconds,
        kubelet_port=args.kubelet_port))
