"""What every measurement gets: the options of the run, and what it must clean up after."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .daemon import BenchDaemon
from .flamegraph import PROFILES, recording


@dataclass
class Context:
    repeat: int
    quick: bool
    pod_counts: list[int]
    podman: bool  # False: skip the peer even where it is installed
    idle_seconds: float
    restart_pods: int
    warm_pool: bool = True  # False: no warm-sandbox rows (a daemon without --warm-sandboxes)
    profiles: list[str] = field(default_factory=list)  # `--profile`: flamegraph.PROFILES
    profile_dir: Path = Path("docs")
    pod_uids: set[str] = field(default_factory=set)  # every pod seen, for the leak check
    pids: set[int] = field(default_factory=set)  # every daemon process started
    raw: dict[str, Any] = field(default_factory=dict)  # samples for the JSON file

    def flame(self, name: str) -> Path | None:
        """Where the flame graph `name` goes, if `--profile` asked for it."""
        assert name in PROFILES, name
        return self.profile_dir / f"flamegraph-{name}.svg" if name in self.profiles else None

    def profiling(self, name: str, pid: int) -> AbstractContextManager[None]:
        """py-spy samples `pid` during the block into the flame graph `name` (if asked)."""
        return recording(pid, self.flame(name), PROFILES[name])

    def daemon(self, **kwargs: Any) -> BenchDaemon:
        """A fresh daemon on a fresh root (the caller purges it)."""
        d = BenchDaemon(**kwargs)
        d.start()
        self.pids.add(d.pid)
        return d
