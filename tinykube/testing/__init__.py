"""Real tinykube daemons for tests: the pytest plugin (`plugin`, loaded through the `pytest11`
entry point), the fixture's object (`TinyKube`) and the daemon it drives (`Daemon`)."""

from .cluster import AsyncTinyKube, ExecResult, HttpResponse, TinyKube
from .daemon import Daemon, wait_for

__all__ = ["AsyncTinyKube", "Daemon", "ExecResult", "HttpResponse", "TinyKube", "wait_for"]
