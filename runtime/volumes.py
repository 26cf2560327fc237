"""Pod volumes on the host, and the bind mounts that put them into a container.

- `emptyDir`: a directory in the pod dir (runtime/layout.py), removed with the pod dir.
- `hostPath`: the host path itself (created for type "", DirectoryOrCreate, FileOrCreate).
- `persistentVolumeClaim`: a claim directory (runtime/layout.py), created if missing and
  never removed with the pod: a StatefulSet's replacement pod finds its data again.

Names become path components through `layout.component`, which refuses a slash or a dot-dot.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import layout
from .safepath import resolve_beneath

from tinykube.model.schema import VOLUME_SOURCES, volume_sources


class VolumeError(ValueError):
    """A volume or volumeMount that cannot be prepared; the message names the field."""


@dataclass(frozen=True)
class BindMount:
    source: Path
    target: str
    readonly: bool = False


def claim_dir(root: Path, namespace: str, claim: str) -> Path:
    try:
        return layout.claim_dir(root, namespace, claim)
    except layout.UnsafeName as e:
        raise VolumeError(str(e)) from None


def prepare_volumes(pod: dict[str, Any], root: Path) -> dict[str, Path]:
    """Create every volume of the pod on the host; returns {volume name: host path}."""
    meta = pod["metadata"]
    paths: dict[str, Path] = {}
    for i, volume in enumerate((pod.get("spec") or {}).get("volumes") or []):
        field = f"spec.volumes[{i}]"
        name = layout.component(volume.get("name"), f"{field}.name", VolumeError)
        sources = volume_sources(volume)
        if len(sources) != 1:
            raise VolumeError(f"{field}: needs exactly one volume source of "
                              f"{', '.join(VOLUME_SOURCES)}, got {sources or 'none'}")
        paths[name] = PREPARE[sources[0]](volume, meta, root, field)
    return paths


def _empty_dir(volume: dict[str, Any], meta: dict[str, Any], root: Path, field: str) -> Path:
    uid = layout.component(meta["uid"], "metadata.uid", VolumeError)
    path = layout.empty_dir(root, uid, volume["name"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def _claim(volume: dict[str, Any], meta: dict[str, Any], root: Path, field: str) -> Path:
    claim: Any = (volume["persistentVolumeClaim"] or {}).get("claimName")
    path = claim_dir(root, meta.get("namespace") or "default", claim)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _host(volume: dict[str, Any], meta: dict[str, Any], root: Path, field: str) -> Path:
    return _host_path(volume["hostPath"] or {}, f"{field}.hostPath")


# How each of the model's VOLUME_SOURCES becomes a host path (tests check every one has one).
PREPARE: dict[str, Callable[[dict[str, Any], dict[str, Any], Path, str], Path]] = {
    "emptyDir": _empty_dir, "hostPath": _host, "persistentVolumeClaim": _claim,
}


def _host_path(source: dict[str, Any], field: str) -> Path:
    raw = source.get("path")
    if not isinstance(raw, str) or not raw.startswith("/"):
        raise VolumeError(f"{field}.path: must be an absolute path, got {raw!r}")
    path = Path(raw)
    kind = source.get("type") or ""
    if kind in ("", "DirectoryOrCreate"):
        if not path.exists():
            path.mkdir(parents=True, exist_ok=True)
    elif kind == "FileOrCreate":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    elif kind == "Directory" and not path.is_dir():
        raise VolumeError(f"{field}: {raw} is not a directory")
    elif kind == "File" and not path.is_file():
        raise VolumeError(f"{field}: {raw} is not a file")
    return path


def container_mounts(container: dict[str, Any], volumes: dict[str, Path],
                     field: str = "container") -> list[BindMount]:
    """The container's volumeMounts as bind mounts (subPath resolved and created)."""
    mounts = []
    for i, mount in enumerate(container.get("volumeMounts") or []):
        where = f"{field}.volumeMounts[{i}]"
        name = mount.get("name")
        if name not in volumes:
            raise VolumeError(f"{where}.name: no volume named {name!r} in spec.volumes")
        target = mount.get("mountPath")
        if not isinstance(target, str) or not target.startswith("/"):
            raise VolumeError(f"{where}.mountPath: must be an absolute path, got {target!r}")
        source = volumes[name]
        sub_path = mount.get("subPath")
        if sub_path:
            parts = Path(sub_path).parts
            if Path(sub_path).is_absolute() or ".." in parts:
                raise VolumeError(f"{where}.subPath: must be a relative path without '..'")
            source = source / sub_path
            if not source.exists():
                source.mkdir(parents=True, exist_ok=True)
        mounts.append(BindMount(source, target, bool(mount.get("readOnly"))))
    return mounts


def working_dir(cwd: str | None, mounts: list[BindMount], scratch: Path,
                field: str = "container") -> BindMount | None:
    """Make the container's `workingDir` exist, as runc creates a missing cwd. Below a volume
    it is created in the volume (without following a symlink the container planted there);
    elsewhere the host's file system is not touched: an empty directory of the pod's
    (`scratch`) is mounted there instead, returned as an extra mount. None: nothing to add."""
    if not cwd or cwd == "/":
        return None
    target = posixpath.normpath(cwd)
    covering = [m for m in mounts
                if target == posixpath.normpath(m.target)
                or target.startswith(posixpath.normpath(m.target).rstrip("/") + "/")]
    if covering:
        mount = max(covering, key=lambda m: len(posixpath.normpath(m.target)))
        relative = posixpath.relpath(target, posixpath.normpath(mount.target))
        if relative != "." and not mount.readonly:
            try:
                resolve_beneath(Path(mount.source), relative, create="dir")
            except OSError as e:
                raise VolumeError(f"{field}.workingDir: {cwd}: {e}") from None
        return None
    if os.path.isdir(target):
        return None
    scratch.mkdir(parents=True, exist_ok=True)
    return BindMount(scratch, target)
