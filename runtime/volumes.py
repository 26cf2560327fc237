"""Pod volumes on the host, and the bind mounts that put them into a container.

- `emptyDir`: a directory in the pod dir (runtime/layout.py), removed with the pod dir.
- `hostPath`: the host path itself (created for type "", DirectoryOrCreate, FileOrCreate).
- `persistentVolumeClaim`: a claim directory (runtime/layout.py), created if missing and
  never removed with the pod: a StatefulSet's replacement pod finds its data again.
- `configMap`, `secret`, `downwardAPI`, `projected`: a directory in the pod dir (a tmpfs
  for all but configMap, as the kubelet keeps secrets off disk) filled by the atomic writer
  (runtime/atomicwriter.py) from the objects `lookup` finds; mounted read-only; updated in
  place by runtime/configwatch.py.

Names become path components through `layout.component`, which refuses a slash or a dot-dot.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import atomicwriter, layout, projection, syscalls
from .safepath import resolve_beneath

from tinykube.model import quantity
from tinykube.model.schema import PROJECTED_SOURCES, VOLUME_SOURCES, volume_sources


def _nothing(kind: str, name: str) -> dict[str, Any] | None:
    return None


class VolumeError(ValueError):
    """A volume or volumeMount that cannot be prepared; the message names the field."""


class MissingVolumeSource(VolumeError):
    """A ConfigMap, Secret or key a volume needs is not there (yet): the pod waits."""

    def __init__(self, volume: str, detail: str) -> None:
        super().__init__(f'volume "{volume}": {detail}')
        self.volume = volume
        self.detail = detail

    @property
    def event_message(self) -> str:
        """The kubelet's FailedMount message."""
        return f'MountVolume.SetUp failed for volume "{self.volume}" : {self.detail}'


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


def prepare_volumes(pod: dict[str, Any], root: Path,
                    lookup: projection.Lookup = _nothing) -> dict[str, Path]:
    """Create every volume of the pod on the host; returns {volume name: host path}.
    `lookup` finds the ConfigMaps and Secrets of the pod's namespace by (kind, name)."""
    paths: dict[str, Path] = {}
    for i, volume in enumerate((pod.get("spec") or {}).get("volumes") or []):
        field = f"spec.volumes[{i}]"
        name = layout.component(volume.get("name"), f"{field}.name", VolumeError)
        sources = volume_sources(volume)
        if len(sources) != 1:
            raise VolumeError(f"{field}: needs exactly one volume source of "
                              f"{', '.join(VOLUME_SOURCES)}, got {sources or 'none'}")
        paths[name] = PREPARE[sources[0]](volume, pod, root, field, lookup)
    return paths


def _written(volume: dict[str, Any], pod: dict[str, Any], root: Path, field: str,
             lookup: projection.Lookup) -> Path:
    """configMap, secret, downwardAPI, projected: files from API objects."""
    uid = layout.component(pod["metadata"]["uid"], "metadata.uid", VolumeError)
    path = layout.empty_dir(root, uid, volume["name"])
    try:
        files = projection.payload(volume, pod, lookup)
    except projection.MissingSource as e:
        if (path / atomicwriter.DATA).is_symlink():
            # Set up before (a re-adopted pod after a daemon restart): the kubelet keeps a
            # mounted volume's files when its source goes away.
            return path
        raise MissingVolumeSource(volume["name"], str(e)) from None
    path.mkdir(parents=True, exist_ok=True)
    try:
        # Host users do not reach the files (the kubelet's pods dir is 0750 too); containers
        # get the volume itself bind-mounted.
        os.chmod(path.parent, 0o750)
        if projection.memory_backed(volume) and not os.path.ismount(path):
            # Secrets never touch the disk.
            syscalls.mount("tmpfs", str(path), "tmpfs",
                           syscalls.MS_NOSUID | syscalls.MS_NODEV, "mode=0755")
        atomicwriter.write(path, files, projection.fs_group(pod))
    except OSError as e:
        raise VolumeError(f"{field}: writing the files of volume {volume['name']!r}: {e}"
                          ) from None
    return path


def written_volumes(pod: dict[str, Any]) -> set[str]:
    """Names of the pod's volumes tinykube writes (mounted read-only into containers)."""
    return {v.get("name") for v in (pod.get("spec") or {}).get("volumes") or []
            if any(v.get(s) is not None for s in PROJECTED_SOURCES)}


def _empty_dir(volume: dict[str, Any], pod: dict[str, Any], root: Path, field: str,
               lookup: projection.Lookup) -> Path:
    uid = layout.component(pod["metadata"]["uid"], "metadata.uid", VolumeError)
    path = layout.empty_dir(root, uid, volume["name"])
    path.mkdir(parents=True, exist_ok=True)
    source = volume.get("emptyDir") or {}
    if source.get("medium") == "Memory":
        try:
            mount_memory_dir(path, memory_dir_size(pod, source))
        except OSError as e:
            raise VolumeError(f"{field}.emptyDir: mounting a tmpfs on {path}: {e}") from None
    _apply_fs_group(path, pod, field)
    return path


def _claim(volume: dict[str, Any], pod: dict[str, Any], root: Path, field: str,
           lookup: projection.Lookup) -> Path:
    claim: Any = (volume["persistentVolumeClaim"] or {}).get("claimName")
    path = claim_dir(root, pod["metadata"].get("namespace") or "default", claim)
    path.mkdir(parents=True, exist_ok=True)
    _apply_fs_group(path, pod, field)
    return path


def _host(volume: dict[str, Any], pod: dict[str, Any], root: Path, field: str,
          lookup: projection.Lookup) -> Path:
    return _host_path(volume["hostPath"] or {}, f"{field}.hostPath")


def _apply_fs_group(path: Path, pod: dict[str, Any], field: str) -> None:
    group = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    if group is None:
        return
    try:
        apply_fs_group(path, int(group))
    except OSError as e:
        raise VolumeError(f"{field}: applying fsGroup {group}: {e}") from None


def memory_dir_size(pod: dict[str, Any], source: dict[str, Any]) -> int | None:
    """The tmpfs size of a `medium: Memory` emptyDir, as the kubelet sizes it: sizeLimit, else
    the pod's memory limit (the sum of its containers', if every one has one), else the
    tmpfs default (half the RAM). Its pages count against the pod's memory cgroup anyway."""
    if source.get("sizeLimit") not in (None, ""):
        return quantity.memory_bytes(source["sizeLimit"])
    total = 0
    for container in (pod.get("spec") or {}).get("containers") or []:
        limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        if limit in (None, ""):
            return None
        total += quantity.memory_bytes(limit)
    return total or None


def mount_memory_dir(path: Path, size: int | None) -> None:
    """A tmpfs on `path` (idempotent: an existing one is kept). It lives in the host's mount
    table under the pod dir, so teardown unmounts it (`unmount_below`)."""
    if os.path.ismount(path):
        return
    options = "mode=0777" + (f",size={max(size, 4096)}" if size else "")
    syscalls.mount("tmpfs", str(path), "tmpfs", syscalls.MS_NOSUID | syscalls.MS_NODEV, options)


def unmount_below(directory: Path) -> None:
    """Detach every mount at or below `directory` (a pod's memory-backed emptyDirs), deepest
    first, so the directory can be removed without reaching into a mount."""
    prefix = os.path.realpath(directory)
    targets = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                target = line.split()[4].replace("\\040", " ")
                if target == prefix or target.startswith(prefix + "/"):
                    targets.append(target)
    except OSError:
        return
    for target in sorted(targets, key=len, reverse=True):
        try:
            syscalls.umount2(target, syscalls.MNT_DETACH)
        except OSError:
            pass


def apply_fs_group(path: Path, gid: int) -> None:
    """What the kubelet does for fsGroup: the volume and everything in it belong to group
    `gid`, group-writable, directories setgid (new files inherit the group), so a non-root
    container can write its own volume. Walks with file descriptors and never follows a
    symlink a container left in the volume (a symlink itself is left alone)."""
    _own(path, None, gid, directory=True)
    for top, dirs, files, top_fd in os.fwalk(path, follow_symlinks=False):
        for name in dirs + files:
            _own(Path(top) / name, top_fd, gid, name=name)


def _own(path: Path, dir_fd: int | None, gid: int, *, name: str | None = None,
         directory: bool = False) -> None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(name if name is not None else path, flags, dir_fd=dir_fd)
    except OSError:
        return  # a symlink (ELOOP), a socket or fifo we cannot open, or gone meanwhile
    try:
        st = os.fstat(fd)
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            return
        os.fchown(fd, -1, gid)
        extra = stat.S_IRGRP | stat.S_IWGRP
        if stat.S_ISDIR(st.st_mode):
            extra |= stat.S_IXGRP | stat.S_ISGID
        os.fchmod(fd, stat.S_IMODE(st.st_mode) | extra)
    finally:
        os.close(fd)


# How each of the model's VOLUME_SOURCES becomes a host path (tests check every one has one).
PREPARE: dict[str, Callable[[dict[str, Any], dict[str, Any], Path, str, projection.Lookup],
                            Path]] = {
    "emptyDir": _empty_dir, "hostPath": _host, "persistentVolumeClaim": _claim,
    "configMap": _written, "secret": _written, "downwardAPI": _written, "projected": _written,
}


# hostPath.type -> (what the path must be, the test); the kubelet's hostPathTypeChecker.
_HOST_PATH_KINDS: dict[str, tuple[str, Callable[[int], bool]]] = {
    "Directory": ("a directory", stat.S_ISDIR), "DirectoryOrCreate": ("a directory", stat.S_ISDIR),
    "File": ("a file", stat.S_ISREG), "FileOrCreate": ("a file", stat.S_ISREG),
    "Socket": ("a socket file", stat.S_ISSOCK), "CharDevice": ("a character device", stat.S_ISCHR),
    "BlockDevice": ("a block device", stat.S_ISBLK),
}


def _host_path(source: dict[str, Any], field: str) -> Path:
    raw = source.get("path")
    if not isinstance(raw, str) or not raw.startswith("/"):
        raise VolumeError(f"{field}.path: must be an absolute path, got {raw!r}")
    path = Path(raw)
    kind = source.get("type") or ""
    if kind == "" and not path.exists():
        path.mkdir(parents=True, exist_ok=True)
    elif kind == "DirectoryOrCreate" and not path.exists():
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
    elif kind == "FileOrCreate" and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o644, exist_ok=True)
    if kind in _HOST_PATH_KINDS:
        what, test = _HOST_PATH_KINDS[kind]
        try:
            ok = test(os.stat(path).st_mode)
        except FileNotFoundError:
            raise VolumeError(f"{field}: hostPath type check failed: {raw} does not exist "
                              f"(type {kind} needs {what})") from None
        if not ok:
            raise VolumeError(f"{field}: hostPath type check failed: {raw} is not {what} "
                              f"(type {kind})")
    return path


def container_mounts(container: dict[str, Any], volumes: dict[str, Path],
                     field: str = "container", written: set[str] | None = None
                     ) -> list[BindMount]:
    """The container's volumeMounts as bind mounts (subPath resolved and created).
    `written`: volumes tinykube writes, always read-only; a subPath into one names a file
    or directory of the current version, bound as it is now (it does not follow updates)."""
    written = written or set()
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
            if name in written:
                if not source.exists():
                    raise VolumeError(f"{where}.subPath: {sub_path!r} is not in volume "
                                      f"{name!r}")
                source = Path(os.path.realpath(source))
            elif not source.exists():
                source.mkdir(parents=True, exist_ok=True)
        readonly = bool(mount.get("readOnly")) or name in written
        mounts.append(BindMount(source, target, readonly))
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


def has_memory_volume(pod: dict[str, Any]) -> bool:
    """Whether the pod has a volume on a tmpfs mounted before its pause: a memory-backed
    emptyDir, a secret, downwardAPI or projected volume."""
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        source = volume.get("emptyDir")
        if isinstance(source, dict) and source.get("medium") == "Memory":
            return True
        if any(volume.get(s) is not None for s in PROJECTED_SOURCES) and \
                projection.memory_backed(volume):
            return True
    return False


def size_limits(pod: dict[str, Any]) -> dict[str, int]:
    """{volume name: sizeLimit bytes} of the pod's disk-backed emptyDirs that have one (a
    memory-backed one is held to its size by its tmpfs)."""
    limits = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        source = volume.get("emptyDir")
        if isinstance(source, dict) and source.get("sizeLimit") not in (None, "") \
                and source.get("medium") != "Memory":
            limits[volume["name"]] = quantity.memory_bytes(source["sizeLimit"])
    return limits


def disk_usage(path: Path) -> int:
    """(Blocking.) Bytes a directory tree uses on disk, as `du` counts them (allocated
    blocks), never following a symlink."""
    total = 0
    stack = [str(path)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += st.st_blocks * 512
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
    return total
