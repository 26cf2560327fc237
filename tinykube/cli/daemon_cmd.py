"""`tinykube daemon`: run the API server, controllers and pods of this machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tinykube.cli.storeflags import add_store_arguments, store_location
from tinykube.client import Client
from tinykube.locations import DEFAULT_ROOT, DEFAULT_RUN_DIR

if TYPE_CHECKING:
    from tinykube.api.tls import Listen


def register(commands: argparse._SubParsersAction) -> None:
    # Imported here, not at the top: it loads cryptography, which every other
    # command would then load at start-up.
    from tinykube.api.tls import DEFAULT_LISTEN

    p = commands.add_parser("daemon", help="run the tinykube daemon (as root)")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                   help=f"state directory: store, pod files, volumes (default {DEFAULT_ROOT})")
    p.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR,
                   help=f"runtime directory (default {DEFAULT_RUN_DIR})")
    p.add_argument("--bridge", default="tk0", help="bridge name for pod networking")
    p.add_argument("--pod-cidr", default="10.88.0.0/16", help="pod address range")
    p.add_argument("--cgroup-parent", default=None,
                   help="cgroup to nest pods under (default: the daemon's own cgroup)")
    p.add_argument("--cgroup-subtree", default="tinykube",
                   help="name of tinykube's cgroup below the parent (one per daemon on a host)")
    p.add_argument("--accept-empty-store", action="store_true",
                   help="start even if the store has lost pods or claims that this node's "
                        "records name (orphan pods are torn down; claim data is kept)")
    p.add_argument("--container-log-max-size", default="10Mi", type=_log_size,
                   metavar="QUANTITY",
                   help="rotate a container's log at this size (kubelet's containerLogMaxSize;"
                        " default 10Mi)")
    p.add_argument("--container-log-max-files", default=5, type=_log_files, metavar="N",
                   help="log files kept per container run, the current one included "
                        "(kubelet's containerLogMaxFiles; default 5, at least 2)")
    p.add_argument("--listen", default=DEFAULT_LISTEN, type=_listen, metavar="HOST:PORT",
                   help=f"TLS listener for kubectl and client libraries (default "
                        f"{DEFAULT_LISTEN}; `none`: only the unix socket); "
                        "`tinykube kubeconfig` prints its credentials")
    p.add_argument("--pod-max-pids", type=int, default=4096, metavar="N",
                   help="pids limit of each pod (pause and all containers; a fork bomb stays "
                        "in its pod); 0: no limit (default 4096)")
    p.add_argument("--service-cidr", default="10.96.0.0/16",
                   help="ClusterIP range of Services (default 10.96.0.0/16)")
    p.add_argument("--no-service-proxy", dest="service_proxy", action="store_false",
                   help="do not program nftables for Services (no ClusterIP/NodePort traffic)")
    p.add_argument("--no-cluster-dns", dest="cluster_dns", action="store_false",
                   help="no DNS server for pods (their resolv.conf names none)")
    p.add_argument("--dns-upstream", default="host", metavar="host|none|IP[:PORT]",
                   help="where cluster DNS sends names outside cluster.local (default: the "
                        "host's first nameserver; none: refuse them)")
    add_store_arguments(p)
    # Default none: a pool sandbox saved ~1.5 ms of a 32 ms start on a quiet machine and
    # nothing measurable under load (docs/BENCHMARK.md), for 3 idle sandboxes per daemon.
    p.add_argument("--warm-sandboxes", type=_warm_sandboxes, default=0, metavar="N",
                   help="pod sandboxes kept ready (pause, netns with veth and address, "
                        "cgroup) and handed to new pods for a faster start; refilled in the "
                        "background when no pod is starting (default 0: none)")
    p.add_argument("--node-name", default="", type=_node_name, metavar="NAME",
                   help="name of this machine's Node object (default: the host name)")
    p.set_defaults(handler=daemon)


def _warm_sandboxes(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a whole number") from None
    if not 0 <= count <= 64:  # each holds an address and a process: a few are enough
        raise argparse.ArgumentTypeError(f"{text!r}: must be between 0 and 64")
    return count


def _node_name(text: str) -> str:
    from tinykube.model import names

    problems = names.dns1123_subdomain(text) if text else []
    if problems:
        raise argparse.ArgumentTypeError(f"{text!r}: {'; '.join(problems)}")
    return text


def _log_size(text: str) -> int:
    from tinykube.model import quantity

    try:
        size = quantity.memory_bytes(text)
    except quantity.QuantityError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None
    if size < 4096:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 4Ki")
    return size


def _log_files(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a whole number") from None
    if not 2 <= count <= 1000:  # the kubelet requires at least 2 as well
        raise argparse.ArgumentTypeError(f"{text!r}: must be between 2 and 1000")
    return count


def _listen(text: str) -> Listen | None:
    # Imported here, not at the top: it loads cryptography, which every other
    # command would then load at start-up.
    from tinykube.api.tls import parse_listen

    try:
        return parse_listen(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def daemon(args: argparse.Namespace, client: Client) -> int:
    # Imported here, not at the top: it loads trio, hypercorn, pyroute2, which every other
    # command would then load at start-up.
    from tinykube.daemon import DaemonConfig, main
    from tinykube.runtime import layout
    from tinykube.store.location import StoreLocationError

    try:
        store = store_location(args, layout.store_path(args.root))
    except StoreLocationError as e:
        print(f"tinykube daemon: {e}", file=sys.stderr)
        return 2
    return main(DaemonConfig(store=store, root=args.root, run_dir=args.run_dir,
                             socket=Path(args.socket) if args.socket else None,
                             bridge=args.bridge, cidr=args.pod_cidr,
                             cgroup_parent=args.cgroup_parent,
                             cgroup_subtree=args.cgroup_subtree,
                             accept_empty_store=args.accept_empty_store, listen=args.listen,
                             pod_max_pids=args.pod_max_pids if args.pod_max_pids > 0 else None,
                             service_cidr=args.service_cidr, service_proxy=args.service_proxy,
                             cluster_dns=args.cluster_dns, dns_upstream=args.dns_upstream,
                             container_log_max_bytes=args.container_log_max_size,
                             container_log_max_files=args.container_log_max_files,
                             warm_sandboxes=args.warm_sandboxes,
                             node_name=args.node_name))
