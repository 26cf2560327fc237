"""The one seam to the kernel's packet filter: the `nft` tool with JSON input.

Each call runs `nft -j -f -` once, so a list of commands is one netlink transaction: the
kernel applies all of it or none of it. Blocking (a process per call): callers run it on a
thread (`trio.to_thread.run_sync`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from .proxyrules import FAMILY, Tables, table_name


def table_of(bridge: str) -> str:
    return table_name(bridge)


class NftError(Exception):
    """nft refused the transaction (the message is nft's) or is not installed."""


def _nft(args: list[str], stdin: str | None = None) -> str:
    binary = shutil.which("nft")
    if binary is None:
        raise NftError("the `nft` tool is missing: install Debian's nftables package "
                       "(scripts/setup does)")
    done = subprocess.run([binary, *args], input=stdin, capture_output=True, text=True,
                          timeout=30, check=False)
    if done.returncode != 0:
        raise NftError(done.stderr.strip() or f"nft {' '.join(args)}: exit {done.returncode}")
    return done.stdout


def apply(commands: list[dict[str, Any]]) -> None:
    """Run `commands` as one transaction."""
    _nft(["-j", "-f", "-"], json.dumps({"nftables": commands}))


def existing(table: str) -> Tables:
    """The chains and sets of `table` as the kernel has them (empty when it does not exist)."""
    try:
        text = _nft(["-j", "list", "table", FAMILY, table])
    except NftError as exc:
        if "No such file or directory" in str(exc):
            return Tables()
        raise
    found = Tables()
    for item in json.loads(text).get("nftables", []):
        if "chain" in item:
            found.chains.add(item["chain"]["name"])
        elif "set" in item:
            found.sets.add(item["set"]["name"])
    return found


def delete_table(table: str) -> bool:
    """Remove `table` and everything in it; False when it did not exist (idempotent)."""
    try:
        _nft(["delete", "table", FAMILY, table])
    except NftError as exc:
        if "No such file or directory" in str(exc) or "missing" in str(exc):
            return False
        raise
    return True
