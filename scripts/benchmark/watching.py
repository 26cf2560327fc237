"""Timing by watching: a thread follows the API's watch stream and stamps the moment a
condition on the watched objects first holds.

Register an expectation *before* acting (`expect(predicate)`), act, then `wait()`: the
predicate is evaluated on the watch thread after every event, so the time returned is the
arrival of the event that made it true, not when the main thread happened to look. No
status is polled with sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from tinykube.client import Client, DaemonUnreachable, StreamIdle

Objects = dict[str, dict[str, Any]]  # name -> latest object
IDLE = 2.0  # s without an event before the stream is reopened (and the stop flag checked)
# A daemon too loaded to answer a reopen within IDLE is asked again, this many times in a row
# (a 500-pod scale-down on a machine at load 20 did that); a dead one fails the watch.
BUSY_RETRIES = 30


class Expectation:
    def __init__(self, predicate: Callable[[Objects], bool], what: str) -> None:
        self.predicate = predicate
        self.what = what
        self.at: float | None = None
        self.done = threading.Event()

        self.error: BaseException | None = None  # the watch failed, or the predicate raised

    def wait(self, timeout: float) -> float:
        """The monotonic time the condition first held; raises TimeoutError after `timeout`."""
        if not self.done.wait(timeout):
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {self.what}")
        if self.error is not None:
            raise RuntimeError(f"waiting for {self.what}: {self.error!r}") from self.error
        assert self.at is not None
        return self.at

    def check(self, objects: Objects, at: float) -> bool:
        """Evaluate on the watch thread; True once settled (held, or raised)."""
        try:
            held = self.predicate(objects)
        except Exception as e:  # noqa: BLE001 - handed to the waiting thread
            self.error = e
            held = True
        if held:
            self.at = at
            self.done.set()
        return held


class Watcher:
    """Latest state of every object of `kind` in `namespace` (matching `label_selector`)."""

    def __init__(self, socket: Path, kind: str, namespace: str = "default",
                 label_selector: str | None = None) -> None:
        self.socket = socket
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.objects: Objects = {}
        self.uids: set[str] = set()  # every uid ever seen (for the leak check)
        self._lock = threading.Lock()
        self._pending: list[Expectation] = []
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{kind}", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        # The watch starts with ADDED for current objects; wait until the stream is open.
        if not self._synced.wait(30):
            raise TimeoutError(f"watch of {self.kind} did not open")
        if self._error is not None:
            raise RuntimeError(f"watch of {self.kind} failed: {self._error}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def expect(self, predicate: Callable[[Objects], bool], what: str) -> Expectation:
        expectation = Expectation(predicate, what)
        with self._lock:
            if self._error is not None:
                raise RuntimeError(f"watch of {self.kind} failed: {self._error}")
            if not expectation.check(self.objects, time.monotonic()):
                self._pending.append(expectation)
        return expectation

    def snapshot(self) -> Objects:
        with self._lock:
            return dict(self.objects)

    def _run(self) -> None:
        client = Client(self.socket, timeout=30)
        resource_version: str | None = None
        busy = 0
        try:
            while not self._stop.is_set():
                try:
                    stream = client.watch(self.kind, self.namespace,
                                          label_selector=self.label_selector,
                                          resource_version=resource_version, idle_timeout=IDLE)
                    for event_type, obj in stream:
                        busy = 0
                        self._synced.set()
                        self._apply(time.monotonic(), event_type, obj)
                        resource_version = obj["metadata"].get("resourceVersion")
                        if self._stop.is_set():
                            return
                except DaemonUnreachable as e:
                    busy += 1
                    if "did not answer" not in str(e) or busy > BUSY_RETRIES:
                        raise
                    resource_version = resource_version or self._latest_version()
                except (StreamIdle, TimeoutError):
                    # Quiet stream, or a daemon too busy to answer the request in time.
                    self._synced.set()
                    # Reopen from the last version seen, so nothing is missed or repeated.
                    resource_version = resource_version or self._latest_version()
        except BaseException as e:  # noqa: BLE001 - surfaced to the waiting thread
            with self._lock:
                self._error = e
                for expectation in self._pending:
                    expectation.error = e
                    expectation.done.set()
                self._pending = []
            self._synced.set()
        finally:
            client.close()

    def _latest_version(self) -> str | None:
        versions = [int(o["metadata"]["resourceVersion"]) for o in self.objects.values()]
        return str(max(versions)) if versions else None

    def _apply(self, at: float, event_type: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        with self._lock:
            if event_type == "DELETED":
                if self.objects.get(name, {}).get("metadata", {}).get("uid") == \
                        obj["metadata"].get("uid"):
                    del self.objects[name]
            else:
                self.objects[name] = obj
                self.uids.add(obj["metadata"]["uid"])
            self._pending = [e for e in self._pending if not e.check(self.objects, at)]


# -- predicates on pods ---------------------------------------------------------------------------

def running(pod: dict[str, Any] | None) -> bool:
    """Phase Running and every container of the spec running."""
    if not pod or pod["metadata"].get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    statuses = status.get("containerStatuses") or []
    wanted = len((pod.get("spec") or {}).get("containers") or [])
    return len(statuses) == wanted and all("running" in (cs.get("state") or {})
                                           for cs in statuses)


def ready(pod: dict[str, Any] | None) -> bool:
    return bool(pod) and any(c.get("type") == "Ready" and c.get("status") == "True"
                             for c in (pod.get("status") or {}).get("conditions") or [])


def restart_count(pod: dict[str, Any] | None, container: str) -> int:
    for cs in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container:
            return int(cs.get("restartCount") or 0)
    return 0


def container_pid(pod: dict[str, Any], container: str) -> int:
    """The pid in `containerID` (tinykube://<pid>): the container's tk-shim monitor."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container:
            return int(cs["containerID"].split("://", 1)[1])
    raise KeyError(f"pod {pod['metadata']['name']}: no status for container {container!r}")
