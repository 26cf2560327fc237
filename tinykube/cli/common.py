"""What every command module shares: the usage error and common options.

Command modules import this, never `tinykube.cli.main` (which imports them all).
"""

from __future__ import annotations

import argparse


class UsageError(Exception):
    """Bad command-line input: printed as `error: ...`, exit 1."""


def add_namespace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", default="default")
