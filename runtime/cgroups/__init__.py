"""cgroups for pods and containers behind one small interface, v1 or v2 chosen at start-up.

``detect(parent)`` reads ``/proc/self/mountinfo`` and ``/proc/self/cgroup``: if a v1
``memory`` hierarchy is mounted (hybrid layout, as on this machine) the v1 backend is used,
otherwise the unified v2 hierarchy. tinykube's cgroups nest under the cgroup the daemon runs
in (per hierarchy) or under ``parent`` (a path relative to each hierarchy's root).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .base import DEFAULT_PIDS_LIMIT, SUBTREE, CgroupDriver, CgroupError, Limits
from .v1 import CONTROLLERS as V1_CONTROLLERS
from .v1 import CgroupV1
from .v2 import CgroupV2

__all__ = [
    "DEFAULT_PIDS_LIMIT",
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


def _under(mount: CgroupMount, cgroup_path: str) -> str:
    """Directory of ``cgroup_path`` (relative to the hierarchy root) below ``mount``."""
    rel = cgroup_path
    if mount.root != "/" and (rel == mount.root or rel.startswith(mount.root + "/")):
        rel = rel[len(mount.root):]
    return os.path.normpath(os.path.join(mount.mountpoint, rel.lstrip("/")))


def detect(parent: str | None = None, *, subtree: str = SUBTREE,
           mountinfo: str = "/proc/self/mountinfo",
           proc_cgroup: str = "/proc/self/cgroup") -> CgroupV1 | CgroupV2:
    """The backend for this machine, with pods under ``<parent>/<subtree>/``.
    ``mountinfo``/``proc_cgroup`` are only for tests."""
    with open(mountinfo) as f:
        mounts = parse_mountinfo(f.read())
    with open(proc_cgroup) as f:
        own = parse_proc_cgroup(f.read())

    v1 = {c: m for m in mounts if m.fstype == "cgroup" for c in m.controllers
          if c in V1_CONTROLLERS}
    if "memory" in v1:
        roots = {c: _under(m, parent if parent is not None else own.get(c, "/"))
                 for c, m in v1.items()}
        return CgroupV1(roots, subtree)

    unified = [m for m in mounts if m.fstype == "cgroup2"]
    if not unified:
        raise CgroupError("no cgroup hierarchy found in " + mountinfo)
    mount = unified[0]
    return CgroupV2(_under(mount, parent if parent is not None else own.get("", "/")), subtree)


PLACEMENT_FILE = "cgroups.json"


def detect_pinned(run_dir: str | os.PathLike[str], parent: str | None = None, *,
                  subtree: str = SUBTREE) -> CgroupV1 | CgroupV2:
    """`detect`, pinned to where this host's pods already are.

    Each login session (and each CI step) may sit in a cgroup of its own, so "the cgroup the
    daemon runs in" differs between the daemon that started the pods and a later daemon or
    `tinykube reset` run from another shell. The first start records the directories it chose
    in the runtime dir (which, like cgroups, is gone after a reboot) and later starts reuse
    them; an explicit `parent` always wins and is recorded.
    """
    path = os.path.join(os.fspath(run_dir), PLACEMENT_FILE)
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
