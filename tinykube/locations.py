"""Where tinykube keeps things by default (a leaf module: the CLI imports it cheaply)."""

from pathlib import Path

from tinykube.runtime.layout import socket_path

DEFAULT_ROOT = Path("/var/lib/tinykube")  # store, pod directories, persistent volumes
DEFAULT_RUN_DIR = Path("/run/tinykube")  # socket, pid file, pod records (gone on reboot)
DEFAULT_SOCKET = socket_path(DEFAULT_RUN_DIR)
