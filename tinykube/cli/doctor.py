"""`tinykube doctor`: list the stored objects the daemon could not load, and set them aside.

The daemon starts whatever its store holds: a row it cannot serve (not JSON, no name, a
`status` of the wrong type, ...) is skipped and reported instead of crashing every start.
`doctor` shows those rows; `doctor --repair` moves each out of the store into a JSON backup
file under `<root>/doctor-backup/` (the row's raw text, key and reason), which frees its name.
"""

from __future__ import annotations

import argparse

from tinykube.client import Client


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("doctor", help="list stored objects the daemon could not load "
                                           "(--repair: move them to backup files)")
    p.add_argument("--repair", action="store_true",
                   help="move every unloadable object out of the store into a backup file")
    p.set_defaults(handler=doctor)


def doctor(args: argparse.Namespace, client: Client) -> int:
    items = client.unloadable()
    if not items:
        print("store: every object loaded")
        return 0
    if not args.repair:
        print(f"store: {len(items)} object(s) could not be loaded and are not served:")
        for item in items:
            print(f"  {_key(item)}: {item['reason']}")
        print("run `tinykube doctor --repair` to move them to backup files")
        return 1
    for item in client.set_aside_unloadable():
        print(f"set aside {_key(item)} ({item['reason']}) -> {item['backup']}")
    return 0


def _key(item: dict) -> str:
    return f"{item['kind']} {item['namespace']}/{item['name']}"
