"""The tinykube daemon with timers around the steps of a pod's start, for the profile.

Product code is not edited: this entry point wraps the functions the pod worker calls
(module attributes and methods, looked up at call time) before running the ordinary
`tinykube daemon`. Each call appends one JSON line `{"uid", "phase", "start", "end"}` to the
spans file, with `time.monotonic()` stamps: CLOCK_MONOTONIC is system-wide, so they line up
with the benchmark's own stamps (create sent, Running seen on the watch).

Wrapped functions that run on worker threads are timed on that thread; the hop to and from
the thread shows up as time between spans ("unaccounted" in the profile table).

    python -m scripts.benchmark.profiled_daemon SPANS_FILE --socket S daemon --root R ...
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

_fd = -1


def _emit(uid: str | None, phase: str, start: float, end: float) -> None:
    if uid is None:
        return
    line = json.dumps({"uid": uid, "phase": phase, "start": start, "end": end}) + "\n"
    os.write(_fd, line.encode())  # O_APPEND: one write per line, safe across threads


def timed(phase: str | Callable[..., str], uid_of: Callable[..., str | None]
          ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap a sync or async function; `uid_of(*args, **kwargs)` names the pod."""
    def name_of(args: tuple, kwargs: dict) -> str:
        return phase(*args, **kwargs) if callable(phase) else phase

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                start = time.monotonic()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    _emit(_safe(uid_of, args, kwargs), name_of(args, kwargs), start,
                          time.monotonic())
            return async_wrapper

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.monotonic()
            try:
                return fn(*args, **kwargs)
            finally:
                _emit(_safe(uid_of, args, kwargs), name_of(args, kwargs), start,
                      time.monotonic())
        return sync_wrapper
    return wrap


def _safe(uid_of: Callable[..., str | None], args: tuple, kwargs: dict) -> str | None:
    try:
        return uid_of(*args, **kwargs)
    except Exception:  # noqa: BLE001 - a span without a pod is dropped, never an error
        return None


def _patch(owner: Any, attribute: str, wrapper: Callable[[Callable[..., Any]], Any]) -> None:
    setattr(owner, attribute, wrapper(getattr(owner, attribute)))


def install() -> None:
    import tinykube.netns.ipam
    import tinykube.netns.links
    import tinykube.netns.podnet
    import tinykube.runtime.cgroups
    import tinykube.runtime.hostsfile
    import tinykube.runtime.kubelet
    import tinykube.runtime.podworker
    import tinykube.runtime.records
    import tinykube.runtime.spawn
    import tinykube.runtime.volumes
    import tinykube.runtime.warmpool
    import tinykube.store

    def obj_uid(*a: Any, **k: Any) -> str:
        return a[3]["metadata"]["uid"]  # Store._commit(self, type, key, obj, durable)

    def commit_phase(*a: Any, **k: Any) -> str:
        return f"store write {a[3].get('kind', '?')} {a[1]}{' (fsync)' if a[4] else ''}"

    _patch(tinykube.store.SqliteStore, "_commit", timed(commit_phase, obj_uid))
    _patch(tinykube.store.Store, "record_event",
           timed("event", lambda *a, **k: a[1]["metadata"]["uid"]))
    _patch(tinykube.runtime.kubelet.Kubelet, "_observe",
           timed("kubelet observe", lambda *a, **k: a[1]["metadata"]["uid"]))
    _patch(tinykube.runtime.records, "write_record",
           timed("record write", lambda *a, **k: a[1].uid))
    _patch(tinykube.runtime.podworker, "start_sandbox_sync",
           timed("sandbox (pause)", lambda *a, **k: a[0]))
    _patch(tinykube.runtime.podworker, "start_sandbox_sync",
           _remember("sandbox", lambda *a, **k: a[0]))
    _patch(tinykube.runtime.warmpool.WarmPool, "claim",
           timed("warm sandbox claim", lambda *a, **k: a[1]))
    _patch(tinykube.netns.ipam.Ipam, "rename", timed("  ipam rename", lambda *a, **k: a[2]))
    _patch(tinykube.runtime.warmpool, "set_hostname",
           timed("  hostname (setns uts)", lambda *a, **k: _current_attach.get("claim")))
    _patch(tinykube.runtime.warmpool.WarmPool, "claim",
           _remember("claim", lambda *a, **k: a[1]))
    _patch(tinykube.netns.podnet.PodNetwork, "attach", timed("netns attach", lambda *a, **k: a[1]))
    _patch(tinykube.netns.ipam.Ipam, "allocate", timed("  ipam allocate", lambda *a, **k: a[1]))
    _patch(tinykube.netns.links, "create_pod_veth",
           timed("  veth create", lambda *a, **k: a[1][3:]))  # host name: tkv<uid[:8]>
    _patch(tinykube.netns.podnet, "configure_pod_side",
           timed("  pod-side config", lambda *a, **k: _current_attach.get("uid")))
    import tinykube.runtime.sandbox
    # shim_spawn lives in tinykube.runtime.sandbox; spawn.py imported its own name for it.
    _patch(tinykube.runtime.sandbox, "shim_spawn",
           timed("  spawn pause (tk-shim -E)", lambda *a, **k: _uid_in(a[2])))
    _patch(tinykube.runtime.sandbox, "pause_command",
           timed("  find pause program", lambda *a, **k: _current_attach.get("sandbox")))
    _patch(tinykube.runtime.spawn, "shim_spawn",
           timed("  spawn tk-shim + set-up", lambda *a, **k: _uid_in(a[2])))
    _patch(tinykube.runtime.spawn, "_open_namespaces",
           timed("  open pause namespaces", lambda *a, **k: _uid_in(a[2])))
    _patch(tinykube.runtime.spawn, "plan_mounts",
           timed("  plan mounts", lambda *a, **k: _uid_in(a[1])))
    _patch(tinykube.runtime.hostsfile, "write_pod_files",
           timed("pod files", lambda *a, **k: os.path.basename(str(a[0]))))
    _patch(tinykube.runtime.volumes, "prepare_volumes",
           timed("volumes", lambda *a, **k: a[0]["metadata"]["uid"]))
    _patch(tinykube.runtime.spawn, "spawn_container",
           timed("spawn container", lambda *a, **k: a[2]))
    _patch(tinykube.runtime.spawn, "spawn_container", _remember("spawn", lambda *a, **k: a[2]))
    _patch(tinykube.runtime.podworker.PodWorker, "_write_status",
           timed("status publish", lambda *a, **k: a[0].uid))

    detect = tinykube.runtime.cgroups.detect

    def timed_detect(*args: Any, **kwargs: Any) -> Any:
        driver = detect(*args, **kwargs)
        driver.create_pod = timed("cgroup pod", lambda *a, **k: a[0])(driver.create_pod)
        driver.create_container = timed("cgroup container",
                                        lambda *a, **k: a[0])(driver.create_container)
        driver.rename_pod = timed("  cgroup rename", lambda *a, **k: a[1])(driver.rename_pod)
        return driver
    tinykube.runtime.cgroups.detect = timed_detect

    # configure_pod_side gets only the netns fd; remember which pod attach is running.
    attach = tinykube.netns.podnet.PodNetwork.attach

    async def attach_with_uid(self: Any, pod_uid: str, pause_pid: int) -> Any:
        _current_attach["uid"] = pod_uid
        return await attach(self, pod_uid, pause_pid)
    tinykube.netns.podnet.PodNetwork.attach = attach_with_uid


_current_attach: dict[str, str] = {}  # step -> the pod it runs for (pods start one by one)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uid_in(text: str) -> str | None:
    """The pod uid in a message such as "starting container 'app' of pod <uid>"."""
    match = _UUID.search(str(text))
    return match.group(0) if match else None


def _remember(step: str, uid_of: Callable[..., str]) -> Callable[..., Any]:
    """For helpers called without the pod's uid: note which pod the enclosing step is for."""
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                _current_attach[step] = uid_of(*args, **kwargs)
                return fn(*args, **kwargs)
            return sync_wrapper

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            _current_attach[step] = uid_of(*args, **kwargs)
            return await fn(*args, **kwargs)
        return wrapper
    return wrap


def main() -> int:
    global _fd
    spans_file, *argv = sys.argv[1:]
    _fd = os.open(spans_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    install()
    from tinykube.cli.main import main as tinykube_main
    return tinykube_main(argv)


if __name__ == "__main__":
    sys.exit(main())
