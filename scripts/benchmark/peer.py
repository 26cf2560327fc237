"""The peer: the same pod shape started by Podman, where Podman is installed.

Podman 4.3 on this kind of machine only ran this way (see the README): a rootfs directory
from Debian's busybox-static (no image pulls), `--network none`, cgroupfs + runc and fixed
ulimits from a CONTAINERS_CONF file. Storage lives in a scratch directory (its own --root and
--runroot), so the user's containers and images are never touched; everything is removed
afterwards. One pod = `podman pod create` + `podman run -d --pod ... --rootfs DIR`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
"""
BUSYBOX = ("/bin/busybox", "/usr/bin/busybox")


def missing() -> str | None:
    """Why the peer cannot run here, or None."""
    if shutil.which("podman") is None:
        return ("podman is not installed: `apt-get install -y podman busybox-static runc` "
                "adds the Podman column")
    if shutil.which("runc") is None:
        return "runc is not installed (apt-get install -y runc)"
    if not any(_static(Path(p)) for p in BUSYBOX):
        return "busybox-static is not installed (apt-get install -y busybox-static)"
    return None


def _static(path: Path) -> bool:
    if not path.exists():
        return False
    out = subprocess.run(["file", "-L", str(path)], capture_output=True, text=True,
                         check=False).stdout \
        if shutil.which("file") else "statically linked"
    return "statically linked" in out or "static-pie" in out


class Podman:
    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="tkbench-podman-"))
        rootfs = self.base / "rootfs" / "bin"
        rootfs.mkdir(parents=True)
        busybox = next(p for p in BUSYBOX if _static(Path(p)))
        shutil.copy(busybox, rootfs / "busybox")
        for applet in ("sh", "sleep", "true"):
            (rootfs / applet).symlink_to("busybox")
        (self.base / "containers.conf").write_text(CONF)
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                    "CONTAINERS_CONF": str(self.base / "containers.conf")}
        self.pods: list[str] = []
        # Podman makes <controller>/libpod_parent cgroups; remove them after if we made them.
        self.made_cgroups = not any(Path("/sys/fs/cgroup").glob("*/libpod_parent"))

    def podman(self, *args: str) -> None:
        subprocess.run(["podman", "--root", str(self.base / "storage"), "--runroot",
                        str(self.base / "run"), *args], env=self.env, check=True,
                       capture_output=True, text=True)

    def start_pod(self, name: str) -> float:
        """Seconds for `pod create` + `run -d` of one `sleep` (podman returns once it runs)."""
        start = time.monotonic()
        self.podman("pod", "create", "--name", name, "--network", "none")
        self.pods.append(name)
        self.podman("run", "-d", "--pod", name, "--rootfs", str(self.base / "rootfs"),
                    "/bin/sleep", "3600")
        return time.monotonic() - start

    def remove_pods(self) -> None:
        for name in self.pods:
            self.podman("pod", "rm", "-f", "-t", "0", name)
        self.pods.clear()

    def close(self) -> None:
        try:
            self.remove_pods()
            self.podman("system", "reset", "--force")
        except subprocess.CalledProcessError:
            pass
        subprocess.run(["umount", "-R", str(self.base / "storage")], capture_output=True,
                       check=False)  # usually nothing is mounted any more
        shutil.rmtree(self.base, ignore_errors=True)
        if self.made_cgroups:
            for top in Path("/sys/fs/cgroup").glob("*/libpod_parent"):
                for path in sorted((p for p in top.rglob("*") if p.is_dir()),
                                   key=lambda p: len(p.parts), reverse=True) + [top]:
                    try:
                        path.rmdir()
                    except OSError:
                        pass
