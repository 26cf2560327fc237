"""Find (or build) ``tk-shim``, the small C monitor every container runs under.

Lookup order: ``$TINYKUBE_SHIM``; ``tk-shim`` next to ``sys.executable`` (the set-up installs
it into the venv's ``bin``) unless it is older than the source; a cached build under
``<run_dir>/shim/`` keyed by the source's hash; else compile ``runtime/shim/tk-shim.c`` with
``cc -O2`` into that cache. A missing compiler is a clear error naming what to install.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import layout

SOURCE = Path(__file__).with_name("shim") / "tk-shim.c"
DEFAULT_RUN_DIR = "/run/tinykube"


class ShimError(RuntimeError):
    pass


def build_shim(dest: str | os.PathLike[str]) -> Path:
    """Compile tk-shim to ``dest`` (atomically: a half-written binary is never visible)."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise ShimError(f"tk-shim is not installed and no C compiler (cc) is on PATH to build"
                        f" it from {SOURCE}: install gcc, or put a built tk-shim next to"
                        f" {sys.executable}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}")
    result = subprocess.run([compiler, "-O2", "-o", str(tmp), str(SOURCE), "-lseccomp"],
                            check=False, capture_output=True, text=True)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        hint = (" (install libseccomp-dev: tk-shim's seccomp filter needs it)"
                if "seccomp" in result.stderr else "")
        raise ShimError(f"building tk-shim with {compiler} failed{hint}: "
                        f"{result.stderr.strip()}")
    os.replace(tmp, dest)
    return dest


def _older_than_source(binary: Path) -> bool:
    """A binary built before the source last changed is stale (the set-up rebuilds it)."""
    try:
        return binary.stat().st_mtime < SOURCE.stat().st_mtime
    except FileNotFoundError:
        return False


def shim_path(run_dir: str | os.PathLike[str] = DEFAULT_RUN_DIR) -> str:
    override = os.environ.get("TINYKUBE_SHIM")
    if override:
        if not os.access(override, os.X_OK):
            raise ShimError(f"TINYKUBE_SHIM={override} is not an executable file")
        return override
    beside_python = Path(sys.executable).with_name("tk-shim")
    if os.access(beside_python, os.X_OK) and not _older_than_source(beside_python):
        return str(beside_python)
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    cached = layout.shim_dir(Path(run_dir)) / f"tk-shim-{digest}"
    if not os.access(cached, os.X_OK):
        build_shim(cached)
    return str(cached)
