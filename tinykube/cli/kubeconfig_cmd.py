"""`tinykube kubeconfig`: print an admin kubeconfig for the daemon's TLS listener, so
`tinykube kubeconfig > ~/.kube/config && kubectl get pods` just works."""

from __future__ import annotations

import argparse
import sys

import yaml

from tinykube.client import Client


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("kubeconfig", help="print an admin kubeconfig for kubectl and "
                                               "client libraries (asks the daemon)")
    p.set_defaults(handler=kubeconfig)


def kubeconfig(args: argparse.Namespace, client: Client) -> int:
    # Imported here, not at the top: it loads hypercorn, cryptography, which every other
    # command would then load at start-up.
    from tinykube.api.listener import KUBECONFIG_PATH

    config = client.request("GET", KUBECONFIG_PATH)
    sys.stdout.write(yaml.safe_dump(config, sort_keys=False))
    return 0
