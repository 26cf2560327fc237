"""Every path tinykube keeps under ``--root`` and ``--run-dir``, in one place.

As containerd keeps one root (persistent) and one state dir (gone on reboot), so do we::

    <root>/state.db                                   the store
    <root>/state.reserve                              disk kept free for deletes (store.py,
                                                      beside the db file it is given)
    <root>/doctor-backup/                             rows `tinykube doctor --repair` set aside
    <root>/network/                                   address allocations (netns.podnet)
    <root>/pki/                                       CA, serving cert, admin token (api.tls)
    <root>/pods/<uid>/                                pod dir, removed with the pod
    <root>/pods/<uid>/etc-hosts, etc-hostname, ...    the pod's files (runtime.hostsfile)
    <root>/pods/<uid>/logs/<container>/<n>.log        run n's output (n = restartCount)
    <root>/pods/<uid>/volumes/<name>/                 emptyDir volumes
    <root>/volumes/<namespace>/<claim>/               persistentVolumeClaim data (kept)
    <root>/volumes/.claims.json, .trash/              claim ledger, claims being removed

    <run_dir>/tinykube.sock, tinykube.pid             the API socket, the daemon's pid file
    <run_dir>/cgroups.json                            where this host's pod cgroups are
    <run_dir>/store-mark.json                         the store's last resourceVersion seen
    <run_dir>/shim/                                   tk-shim binaries built on first use
    <run_dir>/pods/<uid>.json                         the pod record (runtime.records)
    <run_dir>/pods/<uid>/<container>.<n>.exit         exit codes the shims write

Files inside one of these directories (the pod dir's etc-hosts, pki's certificates, the
claim ledger) are named by the module that owns that directory, listed above.

Names from objects become path components here, so each one passes `component` (defence in
depth: validation refuses them earlier, but a bug elsewhere must not become a write outside
the root).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

STORE_FILE = "state.db"
SOCKET_FILE = "tinykube.sock"
PID_FILE = "tinykube.pid"
CGROUP_PLACEMENT_FILE = "cgroups.json"
STORE_MARK_FILE = "store-mark.json"


class UnsafeName(ValueError):
    """A name that would not stay one path component (empty, '.', '..', '/', NUL)."""


def component(value: object, what: str,
              error: Callable[[str], Exception] = UnsafeName) -> str:
    """``value`` if it is safe as one path component, else raises ``error(message)``, the
    message naming ``what``."""
    if not isinstance(value, str) or not value or "/" in value or value in (".", "..") \
            or "\0" in value:
        raise error(f"{what}: invalid name {value!r}")
    return value


# -- <root>: persistent state -----------------------------------------------------------------
def store_path(root: Path) -> Path:
    return Path(root) / STORE_FILE


def pki_dir(root: Path) -> Path:
    return Path(root) / "pki"


def network_dir(root: Path) -> Path:
    return Path(root) / "network"


def pods_dir(root: Path) -> Path:
    return Path(root) / "pods"


def pod_dir(root: Path, uid: str) -> Path:
    return pods_dir(root) / component(uid, "metadata.uid")


def logs_dir(root: Path, uid: str, container: str) -> Path:
    return pod_dir(root, uid) / "logs" / component(container, "container name")


def log_file(root: Path, uid: str, container: str, run: int) -> Path:
    return logs_dir(root, uid, container) / f"{run}.log"


def empty_dir(root: Path, uid: str, volume: str) -> Path:
    return pod_dir(root, uid) / "volumes" / component(volume, "volume name")


def claims_dir(root: Path) -> Path:
    return Path(root) / "volumes"


def claim_dir(root: Path, namespace: str, claim: str) -> Path:
    return (claims_dir(root) / component(namespace, "metadata.namespace")
            / component(claim, "persistentVolumeClaim.claimName"))


# -- <run_dir>: gone on reboot, like the processes it names ------------------------------------
def socket_path(run_dir: Path) -> Path:
    return Path(run_dir) / SOCKET_FILE


def pid_file(run_dir: Path) -> Path:
    return Path(run_dir) / PID_FILE


def cgroup_placement(run_dir: Path) -> Path:
    return Path(run_dir) / CGROUP_PLACEMENT_FILE


def store_mark(run_dir: Path) -> Path:
    return Path(run_dir) / STORE_MARK_FILE


def shim_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "shim"


def records_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "pods"


def record_path(run_dir: Path, uid: str) -> Path:
    return records_dir(run_dir) / f"{component(uid, 'metadata.uid')}.json"


def exit_dir(run_dir: Path, uid: str) -> Path:
    return records_dir(run_dir) / component(uid, "metadata.uid")


def exit_file(run_dir: Path, uid: str, container: str, run: int) -> Path:
    return exit_dir(run_dir, uid) / f"{component(container, 'container name')}.{run}.exit"
