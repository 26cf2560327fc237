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
from typing import Any

from tinykube.client import Client, StreamIdle

Objects = dict[str, dict[str, Any]]  # name -> latest object


class Expectation:
    def __init__(self, predicate: Callable[[Objects], bool], what: str) -> None:
        self.predicate = predicate
        self.what = what
        self.at: float | None = None
        self.done = threading.Event()

    def wait(self, timeout: float) -> float:
        """The monotonic time the condition first held; raises TimeoutError after `timeout`."""
        if not self.done.wait(timeout):
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {self.what}")
        assert self.at is not None
        return self.at


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

    def __enter__(self) -> Watcher:
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
            if predicate(self.objects):
                expectation.at = time.monotonic()
                expectation.done.set()
            else:
                self._pending.append(expectation)
        return expectation

    def snapshot(self) -> Objects:
        with self._lock:
            return dict(self.objects)

    def _run(self) -> None:
        client = Client(self.socket, timeout=30)
        resource_version: str | None = None
        try:
            while not self._stop.is_set():
                try:
                    stream = client.watch(self.kind, self.namespace,
                                          label_selector=self.label_selector,
                                          resource_version=resource_version, idle_timeout=0.5)
                    for event_type, obj in stream:
                        self._synced.set()
                        self._apply(time.monotonic(), event_type, obj)
                        resource_version = obj["metadata"].get("resourceVersion")
                        if self._stop.is_set():
                            return
                except StreamIdle:
                    self._synced.set()  # the stream is open and has nothing (more) to say
                    # Reopen from the last version seen, so nothing is missed or repeated.
                    resource_version = resource_version or self._latest_version()
        except BaseException as e:  # noqa: BLE001 - surfaced to the waiting thread
            with self._lock:
                self._error = e
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
            still = []
            for expectation in self._pending:
                if expectation.predicate(self.objects):
                    expectation.at = at
                    expectation.done.set()
                else:
                    still.append(expectation)
            self._pending = still


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
