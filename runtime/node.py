"""What every pod worker on this node shares, and the test-only crash points of pod set-up."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .backoff import DEFAULT_POLICY, BackoffPolicy
from .cgroups import CgroupDriver
from .hostsfile import HostEntry
from .logfiles import DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES
from .probes import NetnsSockets

if TYPE_CHECKING:
    from .podworker import PodWorker
    from .warmpool import WarmPool

    from tinykube.netns.podnet import PodNetwork
    from tinykube.store import Store

log = logging.getLogger("tinykube.runtime.podworker")

# Test-only fault injection: TINYKUBE_CRASH_AT=<step> makes the daemon die at once (as a
# SIGKILL would, no cleanup) right after that step of a pod's set-up, so tests can prove that
# the next start leaves no orphan whatever the crash interrupted. Read once, at start-up.
# (No "record" step: a pod's record is first written with its pause, at "sandbox".)
CRASH_STEPS = ("cgroup", "sandbox", "veth", "spawn")
# After a deleted pod's processes, network and cgroups are gone, before its files and record.
TEARDOWN_CRASH_STEP = "teardown"
_CRASH_AT = os.environ.get("TINYKUBE_CRASH_AT") or None


def crash_point(step: str) -> None:
    if step == _CRASH_AT:
        log.critical("TINYKUBE_CRASH_AT=%s: crashing the daemon on purpose", step)
        os._exit(137)


async def _nothing_to_cover(version: int) -> None:
    return None


@dataclass
class NodeContext:
    """What every worker shares: the store and the node's resources, plus kubelet hooks."""

    store: Store
    root: Path
    run_dir: Path
    network: PodNetwork
    cgroups: CgroupDriver
    sockets: NetnsSockets
    backoff_policy: BackoffPolicy = DEFAULT_POLICY
    # Hidden from every container (an empty tmpfs over each): the daemon's root, run dir, socket.
    hidden_paths: tuple[str, ...] = ()
    cluster_dns: str | None = None  # the nameserver pods' resolv.conf names (None: none)
    # The kubelet keeps subdomain peers' /etc/hosts current; these let it know.
    hosts_peers: Callable[[PodWorker], list[HostEntry]] = lambda worker: []
    address_changed: Callable[[PodWorker], None] = lambda worker: None
    # Awaited before a new pod's first record: the store mark covers this version
    # (runtime/storemark.py; the kubelet sets it).
    cover_store_version: Callable[[int], Awaitable[None]] = _nothing_to_cover
    # Container log rotation by tk-shim (runtime/logfiles.py): size of a file, files kept.
    log_max_bytes: int = DEFAULT_MAX_BYTES
    log_max_files: int = DEFAULT_MAX_FILES
    # Pre-made sandboxes handed to new pods (runtime/warmpool.py); None: every start is cold.
    warm_pool: WarmPool | None = None
