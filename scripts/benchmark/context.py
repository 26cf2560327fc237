"""What every measurement gets: the options of the run, and what it must clean up after."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .daemon import BenchDaemon


@dataclass
class Context:
    repeat: int
    quick: bool
    pod_counts: list[int]
    podman: bool  # False: skip the peer even where it is installed
    idle_seconds: float
    restart_pods: int
    flamegraph: Path | None = None  # `--profile`: py-spy's SVG of the largest scale-out
    pod_uids: set[str] = field(default_factory=set)  # every pod seen, for the leak check
    pids: set[int] = field(default_factory=set)  # every daemon process started
    raw: dict[str, Any] = field(default_factory=dict)  # samples for the JSON file

    def daemon(self, **kwargs: Any) -> BenchDaemon:
        """A fresh daemon on a fresh root (the caller purges it)."""
        d = BenchDaemon(**kwargs)
        d.start()
        self.pids.add(d.pid)
        return d
