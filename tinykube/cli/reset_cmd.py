"""`tinykube reset`: stop every pod and remove everything tinykube made on this host."""

from __future__ import annotations

import argparse
from pathlib import Path

from tinykube.client import Client
from tinykube.locations import DEFAULT_ROOT, DEFAULT_RUN_DIR


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("reset", help="stop all pods and remove tinykube's host resources")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    p.add_argument("--bridge", default="tk0")
    p.add_argument("--pod-cidr", default="10.88.0.0/16")
    p.add_argument("--cgroup-parent", default=None)
    p.add_argument("--cgroup-subtree", default="tinykube")
    p.add_argument("--purge", action="store_true",
                   help="also delete the store and persistent volumes")
    p.set_defaults(handler=reset)


def reset(args: argparse.Namespace, client: Client) -> int:
    # Imported here, not at the top: it loads trio, pyroute2, which every other
    # command would then load at start-up.
    import trio

    from tinykube.cluster.routes import remove_all_routes
    from tinykube.runtime.hostreset import reset_host
    from tinykube.services import nft
    from tinykube.services.proxy import remove_table

    done = trio.run(reset_host, args.root, args.run_dir, args.bridge, args.pod_cidr,
                    args.cgroup_parent, args.cgroup_subtree, args.purge)
    try:  # after the daemon stopped, so nothing re-creates it
        if remove_table(args.bridge):
            done.append(f"removed nftables table ip {nft.table_of(args.bridge)}")
    except nft.NftError as e:
        done.append(f"could not remove the service proxy's nftables table: {e}")
    # An agent's host-gw routes to the other nodes' pod slices (an agent killed before it
    # could remove them leaves them behind).
    done += [f"removed route {route}" for route in remove_all_routes()]
    for line in done:
        print(line)
    kept = "" if args.purge else " (store and persistent volumes kept; --purge removes them)"
    print("tinykube reset complete" + kept)
    return 0
