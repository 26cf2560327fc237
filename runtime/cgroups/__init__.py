"""cgroups for pods and containers behind one small interface, v1 or v2 chosen at start-up.

``detect(parent)`` reads ``/proc/self/mountinfo`` and ``/proc/self/cgroup``: if a v1
``memory`` hierarchy is mounted (hybrid layout, as on this machine) the v1 backend is used,
otherwise the unified v2 hierarchy. tinykube's cgroups nest under the cgroup the daemon runs
in (per hierarchy) or under ``parent`` (a path relative to each hierarchy's root); on v2, a
cgroup the daemon shares with other processes cannot be used (see ``_unless_shared``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..layout import cgroup_placement
from .base import (
    DEFAULT_PIDS_LIMIT,
    DEFAULT_POD_PIDS_LIMIT,
    SUBTREE,
    CgroupDriver,
    CgroupError,
    Limits,
    read_procs,
)
from .v1 import CONTROLLERS as V1_CONTROLLERS
from .v1 import CgroupV1
from .v2 import CgroupV2

__all__ = [
    "DEFAULT_PIDS_LIMIT",
    "DEFAULT_POD_PIDS_LIMIT",
    "CgroupDriver",
    "CgroupError",
    "CgroupV1",
    "CgroupV2",
    "Limits",
    "detect",
    "detect_pinned",
]


@dataclass(frozen=True)
class CgroupMount:
    mountpoint: str
    root: str  # the path inside the hierarchy that is mounted at mountpoint
    fstype: str
    controllers: frozenset[str]


def parse_mountinfo(text: str) -> list[CgroupMount]:
    mounts = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        options = set(tail[2].split(","))
        mounts.append(CgroupMount(mountpoint=_unescape(fields[4]), root=_unescape(fields[3]),
                                  fstype=tail[0], controllers=frozenset(options)))
    return mounts


def _unescape(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040 ...).
    return path.encode().decode("unicode_escape") if "\\" in path else path


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """Map each controller (and "" for the v2 entry) to the process's cgroup path."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in (parts[1].split(",") if parts[1] else [""]):
            result[controller] = parts[2]
    return result


def _parts(path: str) -> list[str]:
    # Component-wise, never normpath: "/.." is how the kernel shows a cgroup outside the reader's
    # cgroup namespace, and normpath would fold it into "/".
    return [p for p in path.split("/") if p and p != "."]


def _preferred(mounts: list[CgroupMount]) -> list[CgroupMount]:
    """One mount per mountpoint (a later mount on the same path hides the earlier one), the
    canonical /sys/fs/cgroup one first, then the one that shows most of the hierarchy."""
    visible = {m.mountpoint: m for m in mounts}
    return sorted(visible.values(), key=lambda m: (not m.mountpoint.startswith("/sys/fs/cgroup/"),
                                                   len(_parts(m.root)), m.mountpoint))


def _below(mount: CgroupMount, cgroup_path: str) -> str | None:
    """The directory of ``cgroup_path`` through ``mount``, or None if the mount does not show it.

    Both ``cgroup_path`` (from /proc/self/cgroup) and the mount's root (from mountinfo) are
    paths in the reader's cgroup namespace, so the cgroup is ``mountpoint / (path - root)``.
    In a container without a cgroup namespace the hierarchy is mounted with a root of, e.g.,
    ``/libpod_parent/libpod-<id>``; the process's own cgroup is that root, i.e. the mountpoint.
    """
    root, path = _parts(mount.root), _parts(cgroup_path)
    if path[:len(root)] != root or ".." in path[len(root):]:
        return None
    return os.path.join(mount.mountpoint, *path[len(root):])


def _own_dir(label: str, mounts: list[CgroupMount], own: str) -> str:
    """The directory of this process's cgroup in one hierarchy, through a mount that shows it."""
    for mount in _preferred(mounts):
        found = _below(mount, own)
        if found is not None:
            return found
    shown = ", ".join(f"{m.mountpoint} (root {m.root})" for m in mounts)
    raise CgroupError(
        f"this process's {label} cgroup {own} is not visible through any mount of that"
        f" hierarchy ({shown}): cgroups created there would not contain it. Mount the"
        f" hierarchy so that it shows the process's cgroup (a container with its own cgroup"
        f" namespace mounts it freshly), or give a cgroup parent explicitly")


def _parent_dir(mounts: list[CgroupMount], parent: str) -> str:
    """A configured parent: a hierarchy path, resolved through the mount that shows it; in a
    container whose mount shows only its own subtree, relative to that mount (as runc does)."""
    if ".." in _parts(parent):
        raise CgroupError(f"cgroup parent {parent!r}: must not contain '..'")
    preferred = _preferred(mounts)
    for mount in preferred:
        found = _below(mount, parent)
        if found is not None and _parts(mount.root):
            return found  # the full hierarchy path of a directory the mount shows
    return os.path.join(preferred[0].mountpoint, *_parts(parent))


def _resolve(label: str, mounts: list[CgroupMount], parent: str | None, own: str) -> str:
    return _own_dir(label, mounts, own) if parent is None else _parent_dir(mounts, parent)


def detect(parent: str | None = None, *, subtree: str = SUBTREE,
           mountinfo: str = "/proc/self/mountinfo",
           proc_cgroup: str = "/proc/self/cgroup") -> CgroupV1 | CgroupV2:
    """The backend for this machine, with pods under ``<parent>/<subtree>/``.
    ``mountinfo``/``proc_cgroup`` are only for tests."""
    with open(mountinfo) as f:
        mounts = parse_mountinfo(f.read())
    with open(proc_cgroup) as f:
        own = parse_proc_cgroup(f.read())

    v1: dict[str, list[CgroupMount]] = {}
    for m in mounts:
        if m.fstype == "cgroup":
            for c in m.controllers & set(V1_CONTROLLERS):
                v1.setdefault(c, []).append(m)
    if "memory" in v1:
        roots = {c: _resolve(c, ms, parent, own.get(c, "/")) for c, ms in v1.items()}
        return CgroupV1(roots, subtree)

    unified = [m for m in mounts if m.fstype == "cgroup2"]
    if not unified:
        raise CgroupError("no cgroup hierarchy found in " + mountinfo)
    found = _resolve("cgroup2", unified, parent, own.get("", "/"))
    if parent is None:
        found = _unless_shared(found, _preferred(unified)[0])
    return CgroupV2(found, subtree)


def _unless_shared(own_dir: str, mount: CgroupMount) -> str:
    """v2: the daemon's own cgroup, unless other processes share it (a login session's scope):
    such a cgroup can never hand controllers down ("no internal processes") and tinykube does
    not move processes it does not own, so pods go under the hierarchy's root instead, as the
    kubelet's ``/kubepods`` do. Alone there (a systemd unit with ``Delegate=yes``), the daemon
    keeps its cgroup and steps into a leaf of it (``CgroupV2._enable``)."""
    if own_dir == mount.mountpoint or _parts(mount.root):
        return own_dir  # already the root; or a mount showing a subtree only (a container)
    others = [pid for pid in read_procs(own_dir) if pid != os.getpid()]
    return mount.mountpoint if others else own_dir


def detect_pinned(run_dir: str | os.PathLike[str], parent: str | None = None, *,
                  subtree: str = SUBTREE) -> CgroupV1 | CgroupV2:
    """`detect`, pinned to where this host's pods already are.

    Each login session (and each CI step) may sit in a cgroup of its own, so "the cgroup the
    daemon runs in" differs between the daemon that started the pods and a later daemon or
    `tinykube reset` run from another shell. The first start records the directories it chose
    in the runtime dir (which, like cgroups, is gone after a reboot) and later starts reuse
    them; an explicit `parent` always wins and is recorded.
    """
    path = os.fspath(cgroup_placement(Path(run_dir)))
    if parent is None:
        try:
            with open(path) as f:
                saved = json.load(f)
            if saved.get("subtree") == subtree:
                if saved["version"] == 1:
                    return CgroupV1(saved["roots"], subtree)
                return CgroupV2(saved["roots"]["unified"], subtree)
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            pass
    driver = detect(parent, subtree=subtree)
    roots = driver.controller_roots if isinstance(driver, CgroupV1) else {
        "unified": driver.parent_dir}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump({"version": driver.version, "subtree": subtree, "roots": roots}, f)
    os.replace(tmp, path)
    return driver
