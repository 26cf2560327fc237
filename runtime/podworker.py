"""One pod worker per pod uid: makes processes match the Pod and reports them in its status.

Life of a pod, in the order the worker does it (record first, then act; every step has an
idempotent undo in `teardown`):

  record  -> <run_dir>/pods/<uid>.json (names the uid; every host resource derives from it)
  cgroup  -> <parent>/tinykube/pod-<uid>
  sandbox -> the pause process (net+uts+ipc namespaces), hostname = spec.hostname or name
  network -> veth + address (status.podIP); hostIP is the bridge gateway
  files   -> /etc/hosts, /etc/hostname, /etc/resolv.conf in <root>/pods/<uid>/
  volumes -> emptyDir / hostPath / persistentVolumeClaim
  containers, in spec order, each supervised by its own task: start, probes, await exit
  (pidfd, no polling), record the exit code and reason, restart by restartPolicy after the
  crash back-off.

Stopping (deletionTimestamp): SIGTERM to every container, wait the grace period, SIGKILL
what is left in the container cgroups, stop the pause, detach the network, remove cgroups,
the pod dir (not persistent volumes) and the record, then remove the Pod from the store
(`grace_period=0`). A pod whose pause dies is Failed (a ReplicaSet replaces it); a pod whose
containers all finished for good (Succeeded/Failed) gives back its pause, address and
cgroups at once and keeps its logs until deleted.

Status writes are the main store load with hundreds of pods: transitions only mark the
status dirty, one publisher task per pod computes the status and writes it only when it
differs from the last write, so bursts (started -> ready) coalesce into one write.

Cancellation (daemon stop) is not deletion: the worker just stops supervising and the
processes keep running, to be re-adopted from the record by the next daemon (`resume`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from . import hostsfile, records, spawn, status, syscalls, volumes
from .backoff import DEFAULT_POLICY, BackoffPolicy, CrashBackoff
from .cgroups import CgroupDriver
from .containerspec import (
    ContainerConfigError,
    container_argv,
    container_env,
    container_limits,
    grace_seconds,
    run_as,
)
from .probes import (
    NetnsSockets,
    ProbeError,
    ProbeHooks,
    ProbeKind,
    ProbeSpec,
    ProbeTarget,
    check,
    container_probes,
    run_container_probes,
)
from .sandbox import (
    Sandbox,
    SpawnError,
    sandbox_alive,
    start_sandbox,
    stop_sandbox,
    wait_pid_exit,
)
from .status import (
    ContainerStatus,
    PodPhase,
    RestartPolicy,
    TerminatedReason,
    WaitingReason,
    now_iso,
)
from tinykube.model.errors import ApiError, NotFound

log = logging.getLogger("tinykube.runtime.podworker")

# Test-only fault injection: TINYKUBE_CRASH_AT=<step> makes the daemon die at once (as a
# SIGKILL would, no cleanup) right after that step of a pod's set-up, so tests can prove that
# the next start leaves no orphan whatever the crash interrupted. Read once, at start-up.
CRASH_STEPS = ("record", "cgroup", "sandbox", "veth", "spawn")
_CRASH_AT = os.environ.get("TINYKUBE_CRASH_AT") or None


def crash_point(step: str) -> None:
    if step == _CRASH_AT:
        log.critical("TINYKUBE_CRASH_AT=%s: crashing the daemon on purpose", step)
        os._exit(137)


class SandboxGone(Exception):
    """A re-adopted pod's pause process died while no daemon watched it."""


@dataclass
class NodeContext:
    """What every worker shares: the store and the node's resources, plus kubelet hooks."""

    store: Any
    root: Path
    run_dir: Path
    network: Any  # netns.podnet.PodNetwork
    cgroups: CgroupDriver
    sockets: NetnsSockets
    backoff_policy: BackoffPolicy = DEFAULT_POLICY
    # The kubelet keeps subdomain peers' /etc/hosts current; these let it know.
    hosts_peers: Callable[[PodWorker], list[hostsfile.HostEntry]] = lambda worker: []
    address_changed: Callable[[PodWorker], None] = lambda worker: None


@dataclass
class ContainerRun:
    """The live side of one container: its process and back-off (the status is separate)."""

    spec: dict[str, Any]
    backoff: CrashBackoff
    probes: dict[ProbeKind, ProbeSpec] = field(default_factory=dict)
    proc: spawn.ContainerProcess | None = None


# -- the worker -----------------------------------------------------------------------------------

class PodWorker:
    def __init__(self, ctx: NodeContext, pod: dict[str, Any],
                 record: records.PodRecord | None = None) -> None:
        self.ctx = ctx
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta.get("namespace") or "default"
        self.name: str = meta["name"]
        spec = pod.get("spec") or {}
        self.restart_policy = RestartPolicy.of(spec)
        self.hostname = hostsfile.pod_hostname(pod)
        self.subdomain: str | None = spec.get("subdomain") or None
        self.record = record or records.PodRecord(self.uid, self.namespace, self.name)
        self.resumed = record is not None
        self.statuses = {c["name"]: ContainerStatus(c["name"], image=c.get("image") or "")
                         for c in spec.get("containers") or []}
        self.runs: dict[str, ContainerRun] = {}
        self.sandbox: Sandbox | None = None
        self.netns_fd: int | None = None
        self.pod_ip: str | None = None
        self.host_ip: str | None = None
        self.start_time: str | None = (pod.get("status") or {}).get("startTime")
        self.sandbox_dead = False
        self.status_reason: str | None = None
        self.status_message: str | None = None
        self.released = False  # pause, address and cgroups given back
        self.stopping = False  # no more (re)starts: deletion, pause death or pod finished
        self.finished = trio.Event()  # the worker has torn everything down
        self._stop = trio.Event()  # wakes back-off sleeps when stopping
        self._deletion = trio.Event()
        if meta.get("deletionTimestamp"):  # e.g. a delete the previous daemon did not finish
            self._deletion.set()
        self._gone = False  # the Pod is no longer in the store
        self._dirty = trio.Event()
        self._containers_done = trio.Event()
        self._oom_before: dict[str, int] = {}
        self.volume_paths: dict[str, Path] = {}
        self.pod_files: dict[str, Path] = {}
        self._last_status: dict[str, Any] | None = pod.get("status") or None
        if self.resumed:
            self._seed_adopted_statuses()

    # -- inputs from the kubelet -----------------------------------------------------------
    def observe(self, pod: dict[str, Any]) -> None:
        """A newer version of our Pod from the watch."""
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self._deletion.set()

    def forget(self) -> None:
        """The Pod was removed from the store (force delete): stop now, no grace."""
        self._gone = True
        self._deletion.set()

    @property
    def pod_dir(self) -> Path:
        return volumes.pod_dir(self.ctx.root, self.uid)

    @property
    def exit_dir(self) -> Path:
        return Path(self.ctx.run_dir) / "pods" / self.uid

    def hosts_entry(self) -> hostsfile.HostEntry | None:
        if not self.pod_ip or self.released or self.sandbox_dead:
            return None
        return hostsfile.HostEntry(self.pod_ip, self.hostname, self.subdomain, self.namespace)

    # -- main -----------------------------------------------------------------------------
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._publish_loop)
            try:
                await self._lifecycle()
            finally:
                nursery.cancel_scope.cancel()

    async def _lifecycle(self) -> None:
        phase = (self._last_status or {}).get("phase")
        if (self._deletion.is_set() and not self.resumed) or phase in ("Succeeded", "Failed"):
            # Nothing to run: a pod deleted before it started, or a finished one (a previous
            # daemon may have left parts of it: release them).
            await self._release_runtime()
            await self._deletion.wait()
            await self._delete()
            return
        if not await self._set_up_until_ok():
            if not self._deletion.is_set():  # the pause died while no daemon watched
                await self._fail_sandbox_gone()
                await self._deletion.wait()
            await self._delete()
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_pause)
            nursery.start_soon(self._watch_deletion)
            async with trio.open_nursery() as containers:
                for spec in (self.pod.get("spec") or {}).get("containers") or []:
                    await containers.start(self._supervise, spec)
            # Every container is done for good (or the pod is stopping); the deletion
            # watcher has nothing left to wait for and the pause watcher must not outlive us.
            self.stopping = True
            self._stop.set()
            self._containers_done.set()
            nursery.cancel_scope.cancel()
        if not self._deletion.is_set():
            # Finished (or pause died): give back the pause, address and cgroups now.
            await self._release_runtime()
            await self._write_status()
            await self._deletion.wait()
        await self._delete()

    # -- set-up ------------------------------------------------------------------------------
    async def _set_up_until_ok(self) -> bool:
        """Set up the sandbox, retrying with back-off (as the kubelet retries sandbox creation);
        False if the pod was deleted meanwhile."""
        backoff = CrashBackoff(self.ctx.backoff_policy, clock=trio.current_time)
        while True:
            try:
                await self._set_up()
                return True
            except SandboxGone:
                return False
            except (SpawnError, OSError, volumes.VolumeError, ApiError) as e:
                if self._deletion.is_set():
                    return False
                log.warning("pod %s/%s: sandbox set-up failed: %s", self.namespace, self.name, e)
                await self._event("Warning", "FailedCreatePodSandBox",
                                  f"Failed to create pod sandbox: {e}")
                self.status_message = f"sandbox set-up failed: {e}"
                self._mark_dirty()
                await self._release_runtime()
                delay = backoff.exited()
                with trio.move_on_after(delay):
                    await self._deletion.wait()
                if self._deletion.is_set():
                    return False
            except Exception as e:
                log.exception("pod %s/%s: unexpected set-up error", self.namespace, self.name)
                self.status_message = f"sandbox set-up failed: {e}"
                self._mark_dirty()
                await self._release_runtime()
                await self._deletion.wait()
                return False

    async def _set_up(self) -> None:
        self.released = False
        if not self.resumed:  # a re-adopted pod's record is already on disk
            records.write_record(self.ctx.run_dir, self.record)
        crash_point("record")
        await trio.to_thread.run_sync(self.ctx.cgroups.create_pod, self.uid)
        crash_point("cgroup")
        pause = self.record.pause
        if pause and sandbox_alive(Sandbox(self.uid, pause.pid, pause.start_time)):
            self.sandbox = Sandbox(self.uid, pause.pid, pause.start_time)  # re-adopted
        elif pause and self.resumed:
            raise SandboxGone(f"pause process {pause.pid} exited while no daemon ran")
        else:
            await self._kill_unrecorded(None)
            self.sandbox = await start_sandbox(self.uid, self.hostname, self.ctx.cgroups)
            crash_point("sandbox")
            self.record.pause = records.ProcessRecord(self.sandbox.pause_pid,
                                                      self.sandbox.start_time)
            records.write_record(self.ctx.run_dir, self.record)
        self.netns_fd = os.open(f"/proc/{self.sandbox.pause_pid}/ns/net",
                                os.O_RDONLY | os.O_CLOEXEC)
        attachment = await self.ctx.network.attach(self.uid, self.sandbox.pause_pid)
        crash_point("veth")
        self.pod_ip = attachment.ip
        self.host_ip = attachment.gateway
        self.start_time = self.start_time or now_iso()
        self.pod_dir.mkdir(parents=True, exist_ok=True)
        self.write_hosts()
        self.volume_paths = await trio.to_thread.run_sync(
            volumes.prepare_volumes, self.pod, self.ctx.root)
        self.status_message = None
        self._mark_dirty()
        self.ctx.address_changed(self)

    def write_hosts(self) -> None:
        """(Re)write the pod's files in place; the kubelet calls it when subdomain peers change."""
        if not self.pod_dir.is_dir():
            return
        self.pod_files = hostsfile.write_pod_files(
            self.pod_dir, self.hosts_entry(), self.ctx.hosts_peers(self), self.hostname)

    # -- containers -------------------------------------------------------------------------
    async def _supervise(self, spec: dict[str, Any], *,
                         task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        name = spec["name"]
        index = [c["name"] for c in self.pod["spec"]["containers"]].index(name)
        where = f"spec.containers[{index}]"
        st = self.statuses[name]
        run = ContainerRun(spec, CrashBackoff(self.ctx.backoff_policy, clock=trio.current_time))
        self.runs[name] = run
        adopted = self._adopt_container(name, run, st)
        signalled = False
        while not self.stopping:
            proc = adopted
            exit_code: int | None = None
            if proc is None:
                try:
                    run.probes = container_probes(spec, where)
                    proc = await self._start_container(spec, where, st)
                except (ContainerConfigError, ProbeError, volumes.VolumeError) as e:
                    st.mark_waiting(WaitingReason.CREATE_CONTAINER_CONFIG_ERROR, str(e))
                    await self._event("Warning", "Failed", f"Error: {e}")
                except (SpawnError, OSError) as e:
                    st.mark_waiting(WaitingReason.RUN_CONTAINER_ERROR, str(e))
                    await self._event("Warning", "Failed", f"Error: {e}")
            else:
                run.probes = container_probes(spec, where)
                if st.started:  # it passed its startup probe under the previous daemon
                    run.probes.pop(ProbeKind.STARTUP, None)
            probe_clock = self._adopted_probe_clock(st) if adopted is not None else None
            adopted = None
            if not signalled:
                task_status.started()
                signalled = True
            if proc is not None and self.stopping:
                _signal_process(proc, signal.SIGTERM)  # started just as the stop began
            if proc is not None:
                exit_code = await self._run_until_exit(name, run, st, proc, probe_clock)
                if self.stopping or not status.should_restart(self.restart_policy, exit_code):
                    return
            elif self.restart_policy is RestartPolicy.NEVER:
                st.mark_exited(128, TerminatedReason.CONTAINER_CANNOT_RUN, now_iso(),
                               st.state.get("waiting", {}).get("message"))
                self._mark_dirty()
                return
            delay = run.backoff.exited()
            if exit_code is not None:
                st.mark_waiting(WaitingReason.CRASH_LOOP_BACK_OFF,
                                f"back-off {delay:g}s restarting failed container={name} "
                                f"pod={self.name}_{self.namespace}({self.uid})")
                await self._event("Warning", "BackOff", "Back-off restarting failed container "
                                  f"{name} in pod {self.name}_{self.namespace}({self.uid})")
            self._mark_dirty()
            with trio.move_on_after(delay):
                await self._stop.wait()
            if self.stopping:
                return
            if exit_code is not None:
                st.restart_count += 1

    def _seed_adopted_statuses(self) -> None:
        """Carry over what the last status said of containers a previous daemon started, so
        a restart that finds them as they were writes nothing: no Ready blip, no restarted
        clock. As the kubelet does after its own restart, a container with a readiness probe
        is unready until that probe passes again; one without stays ready."""
        previous = {cs.get("name"): cs for cs in
                    (self._last_status or {}).get("containerStatuses") or []}
        specs = {c["name"]: c for c in (self.pod.get("spec") or {}).get("containers") or []}
        for name, entry in self.record.containers.items():
            st, last = self.statuses.get(name), previous.get(name)
            if st is None or last is None or entry.process is None:
                continue
            if last.get("containerID") != f"tinykube://{entry.process.pid}" or \
                    "running" not in (last.get("state") or {}):
                continue
            st.state = last["state"]
            st.last_state = last.get("lastState") or {}
            st.container_id = last["containerID"]
            st.restart_count = entry.restart_count
            st.started = bool(last.get("started"))
            st.ready = bool(last.get("ready")) and "readinessProbe" not in specs[name]

    @staticmethod
    def _adopted_probe_clock(st: ContainerStatus) -> float:
        """The trio time an adopted container started, so probes' initialDelaySeconds count
        from its real start, not from the daemon's restart (as the kubelet's prober does)."""
        started_at = st.state.get("running", {}).get("startedAt")
        try:
            age = (datetime.now(UTC) - datetime.fromisoformat(started_at)).total_seconds()
        except (TypeError, ValueError):
            age = 0.0
        return trio.current_time() - max(0.0, age)

    def _adopt_container(self, name: str, run: ContainerRun,
                         st: ContainerStatus) -> spawn.ContainerProcess | None:
        """Hook for live restore: the container process a previous daemon started, if it is
        still the same process. Its exit code will come from the shim's exit file."""
        entry = self.record.containers.get(name)
        if not self.resumed or entry is None:
            return None
        st.restart_count = entry.restart_count
        if entry.process is None or not entry.exit_file:
            return None
        # Alive: supervise it. Gone: wait_exit returns at once with the exit file's code
        # (or "unknown" if the shim itself was killed), and the restart policy applies.
        proc = spawn.ContainerProcess(entry.process.pid, entry.process.start_time,
                                      entry.exit_file)
        if st.container_id != f"tinykube://{proc.pid}" or not st.running:  # not seeded
            st.mark_running(proc.pid, entry.started_at or now_iso())
        return proc

    async def _start_container(self, spec: dict[str, Any], where: str,
                               st: ContainerStatus) -> spawn.ContainerProcess:
        assert self.sandbox is not None
        name = spec["name"]
        env = container_env(self.pod, spec, self.hostname, self.pod_ip, self.host_ip, where)
        argv = container_argv(spec, env, where)
        limits = container_limits(spec, where)
        user, group = run_as(self.pod, spec)
        mounts = volumes.container_mounts(spec, self.volume_paths, where)
        targets = {m.target for m in mounts}
        launch_mounts = [spawn.Mount(str(m.source), m.target, m.readonly) for m in mounts]
        launch_mounts += [spawn.Mount(str(source), target, False)
                          for target, source in self.pod_files.items() if target not in targets]
        log_path = self.pod_dir / "logs" / name / f"{st.restart_count}.log"
        exit_file = self.exit_dir / f"{name}.{st.restart_count}.exit"
        launch = spawn.ContainerLaunch(argv=argv, env=env, cwd=spec.get("workingDir") or None,
                                       uid=user, gid=group, mounts=launch_mounts,
                                       log_path=str(log_path), exit_file=str(exit_file))
        cgroups = self.ctx.cgroups
        await trio.to_thread.run_sync(cgroups.create_container, self.uid, name, limits)
        await self._kill_unrecorded(name)
        self._oom_before[name] = cgroups.oom_kills(self.uid, name)
        entry = self.record.containers.setdefault(name, records.ContainerRecord(name))
        entry.restart_count = st.restart_count
        entry.exit_file = str(exit_file)
        entry.process = None
        records.write_record(self.ctx.run_dir, self.record)  # record first, then act
        if st.restart_count == 0:
            await self._event("Normal", "Created", f"Created container {name}")
        proc = await spawn.spawn_container(self.sandbox, cgroups, self.uid, name, launch)
        crash_point("spawn")
        entry.process = records.ProcessRecord(proc.pid, proc.start_time)
        entry.started_at = now_iso()
        records.write_record(self.ctx.run_dir, self.record)
        st.mark_running(proc.pid, entry.started_at)
        await self._event("Normal", "Started", f"Started container {name}")
        return proc

    async def _kill_unrecorded(self, name: str | None) -> None:
        """Kill what is in the pod's cgroup (name=None, before a new pause) or a container's
        (before a new start) although no record names it: a crash between a spawn and its
        record leaves such a process, and a (re)start must not run beside it. This also ends
        what an exited container's app left behind, as Kubernetes does before a restart."""
        cgroups = self.ctx.cgroups
        pids = await trio.to_thread.run_sync(cgroups.pids, self.uid, name)
        if pids:
            log.info("pod %s/%s: killing %s left in %s's cgroup that no record names",
                     self.namespace, self.name, sorted(pids),
                     f"container {name}" if name else "the pod")
            await trio.to_thread.run_sync(cgroups.kill_all, self.uid, name, signal.SIGKILL)

    async def _run_until_exit(self, name: str, run: ContainerRun, st: ContainerStatus,
                              proc: spawn.ContainerProcess, started: float | None = None
                              ) -> int:
        """`started`: the trio time the container started (now, unless it was adopted)."""
        run.proc = proc
        run.backoff.started()
        self._mark_dirty()
        started = trio.current_time() if started is None else started
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_container_probes, run.probes, started,
                               self._probe_hooks(name, run, st), name)
            exit_code = await spawn.wait_exit(proc)
            nursery.cancel_scope.cancel()
        run.proc = None
        oom_before = self._oom_before.get(name)
        try:
            oom_now = self.ctx.cgroups.oom_kills(self.uid, name)
        except Exception:  # noqa: BLE001 - the cgroup may be gone already during teardown
            oom_now = oom_before or 0
        oom = oom_before is not None and oom_now > oom_before
        self._oom_before[name] = oom_now
        if exit_code == spawn.EXIT_CODE_UNKNOWN:
            exit_code = status.SIGKILL_EXIT_CODE  # the shim itself was killed
        reason = status.termination_reason(exit_code, oom)
        st.mark_exited(exit_code, reason, now_iso())
        entry = self.record.containers.get(name)
        if entry is not None:
            entry.process = None
            records.write_record(self.ctx.run_dir, self.record)
        if reason is TerminatedReason.OOM_KILLED:
            await self._event("Warning", "OOMKilled",
                              f"Container {name} was killed: memory limit exceeded")
        self._mark_dirty()
        return exit_code

    def _probe_hooks(self, name: str, run: ContainerRun, st: ContainerStatus) -> ProbeHooks:
        target = ProbeTarget(self.netns_fd if self.netns_fd is not None else -1, self.pod_ip,
                             self.ctx.sockets, self._exec_for_probe(name))

        async def checker(spec: ProbeSpec) -> tuple[bool, str]:
            return await check(spec, target)

        async def set_started() -> None:
            st.started = True
            self._mark_dirty()

        async def set_ready(ok: bool) -> None:
            st.ready = ok
            self._mark_dirty()

        async def kill(message: str) -> None:
            await self._event("Normal", "Killing", message)
            await self._stop_container(name, grace_seconds(self.pod) if not self._deletion.is_set()
                                       else 0)

        async def event(type_: str, reason: str, message: str) -> None:
            await self._event(type_, reason, message)

        return ProbeHooks(checker, set_started, set_ready, kill, event)

    def _exec_for_probe(self, name: str) -> Callable[[list[str], float],
                                                    Awaitable[tuple[int, str]]]:
        async def run_exec(argv: list[str], timeout: float) -> tuple[int, str]:
            process = await self._exec(name, argv)
            output = b""
            try:
                with trio.move_on_after(timeout) as scope:
                    async with trio.open_nursery() as nursery:
                        async def drain(stream: Any) -> None:
                            nonlocal output
                            async for chunk in stream:
                                if len(output) < 10_240:
                                    output += chunk
                        nursery.start_soon(drain, process.stdout)
                        nursery.start_soon(drain, process.stderr)
                        await process.wait()
                if scope.cancelled_caught:
                    return -1, f"command timed out after {timeout:g}s"
                return process.returncode, output.decode(errors="replace")
            finally:
                with trio.CancelScope(shield=True):
                    if process.returncode is None:
                        process.kill()
                        await process.wait()
                    for stream in (process.stdin, process.stdout, process.stderr):
                        if stream is not None:
                            await stream.aclose()
        return run_exec

    async def _exec(self, name: str, argv: list[str]) -> trio.Process:
        run = self.runs.get(name)
        if self.sandbox is None or run is None or run.proc is None:
            raise SpawnError(f"container {name!r} of pod {self.namespace}/{self.name} "
                             "is not running")
        user, group = run_as(self.pod, run.spec)
        env = container_env(self.pod, run.spec, self.hostname, self.pod_ip, self.host_ip,
                            f"container {name}")
        return await spawn.exec_in_container(
            self.sandbox, run.proc, argv, cgroups=self.ctx.cgroups, pod_uid=self.uid, name=name,
            env=env, cwd=run.spec.get("workingDir") or "/", uid=user, gid=group)

    async def exec(self, container: str | None, argv: list[str]) -> trio.Process:
        """For the API server: a process in a running container (default: the first)."""
        names = list(self.statuses)
        name = container or (names[0] if names else "")
        if name not in self.statuses:
            raise NotFound(f'container "{name}" is not valid for pod "{self.name}"')
        return await self._exec(name, argv)

    # -- stopping ------------------------------------------------------------------------------
    async def _stop_container(self, name: str, grace: float) -> None:
        """SIGTERM (the shim forwards it), then SIGKILL the whole container cgroup after grace."""
        run = self.runs.get(name)
        proc = run.proc if run else None
        if proc is not None and grace > 0:
            _signal_process(proc, signal.SIGTERM)
            await trio.sleep(grace)  # cancelled early when the container exits
        await trio.to_thread.run_sync(self.ctx.cgroups.kill_all, self.uid, name, signal.SIGKILL)

    async def _watch_deletion(self) -> None:
        await self._deletion.wait()
        self.stopping = True
        self._stop.set()
        grace = 0.0 if self._gone else grace_seconds(self.pod)
        await self._event("Normal", "Killing", "Stopping containers"
                          + (f" (grace period {grace:g}s)" if grace else ""))
        running = [run.proc for run in self.runs.values() if run.proc is not None]
        if grace > 0:
            for proc in running:
                _signal_process(proc, signal.SIGTERM)
            with trio.move_on_after(grace):
                await self._containers_done.wait()
        if not self._containers_done.is_set():
            for name in self.statuses:
                await trio.to_thread.run_sync(self.ctx.cgroups.kill_all, self.uid, name,
                                              signal.SIGKILL)
        await self._containers_done.wait()

    async def _fail_sandbox_gone(self) -> None:
        self.sandbox_dead = True
        self.stopping = True
        self.status_reason = "SandboxDied"
        self.status_message = "The pod's sandbox (pause process) exited"
        for st in self.statuses.values():
            if st.running:
                st.mark_exited(status.SIGKILL_EXIT_CODE, TerminatedReason.ERROR, now_iso())
        await self._release_runtime()
        await self._write_status()

    async def _watch_pause(self) -> None:
        assert self.sandbox is not None
        await wait_pid_exit(self.sandbox.pause_pid, self.sandbox.start_time)
        if self.stopping:
            return
        log.warning("pod %s/%s: pause process %d died: failing the pod", self.namespace,
                    self.name, self.sandbox.pause_pid)
        self.sandbox_dead = True
        self.stopping = True
        self._stop.set()
        self.status_reason = "SandboxDied"
        self.status_message = "The pod's sandbox (pause process) exited"
        # Report Failed now, so a ReplicaSet starts the replacement while this pod's remains
        # are cleaned up (the container states follow as the processes go).
        self._mark_dirty()
        await self._event("Warning", "SandboxChanged", "Pod sandbox died, the pod is failed")
        await trio.to_thread.run_sync(self.ctx.cgroups.kill_all, self.uid, None, signal.SIGKILL)

    async def _release_runtime(self) -> None:
        """Give back everything but the pod dir and the record. Idempotent."""
        with trio.CancelScope(shield=True):
            cgroups = self.ctx.cgroups
            try:
                await trio.to_thread.run_sync(cgroups.kill_all, self.uid, None, signal.SIGKILL)
            except Exception as e:  # noqa: BLE001 - best effort, logged
                log.warning("pod %s: killing its processes: %s", self.uid, e)
            sandbox = self.sandbox
            if sandbox is None and self.record.pause is not None:
                sandbox = Sandbox(self.uid, self.record.pause.pid, self.record.pause.start_time)
            if sandbox is not None:
                await stop_sandbox(sandbox)
            self.sandbox = None
            if self.record.pause is not None:
                self.record.pause = None
                if records.record_path(self.ctx.run_dir, self.uid).exists():
                    records.write_record(self.ctx.run_dir, self.record)
            if self.netns_fd is not None:
                os.close(self.netns_fd)
                self.netns_fd = None
            try:
                await self.ctx.network.detach(self.uid)
            except Exception as e:  # noqa: BLE001 - best effort, logged
                log.warning("pod %s: detaching its network: %s", self.uid, e)
            try:
                await trio.to_thread.run_sync(cgroups.remove, self.uid, None)
            except Exception as e:  # noqa: BLE001 - best effort, logged
                log.warning("pod %s: removing its cgroups: %s", self.uid, e)
            if not self.released and self.pod_ip is not None:
                self.released = True
                self.ctx.address_changed(self)  # peers drop our name from their hosts
            self.released = True

    async def teardown(self) -> None:
        """Remove every trace of the pod on the host (not persistent volumes). Idempotent."""
        await self._release_runtime()
        with trio.CancelScope(shield=True):
            for path in (self.pod_dir, self.exit_dir):
                await trio.to_thread.run_sync(
                    lambda p=path: shutil.rmtree(p, ignore_errors=True))
            records.remove_record(self.ctx.run_dir, self.uid)

    async def _delete(self) -> None:
        await self.teardown()
        if not self._gone:
            try:
                await self.ctx.store.delete("Pod", self.namespace, self.name, grace_period=0,
                                            uid=self.uid)
            except NotFound:
                pass
        self.finished.set()

    # -- status and events --------------------------------------------------------------------
    def _mark_dirty(self) -> None:
        self._dirty.set()

    async def _publish_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty = trio.Event()
            await self._write_status()

    def compute_status(self) -> dict[str, Any]:
        return status.pod_status(
            self._last_status, restart_policy=self.restart_policy,
            containers=list(self.statuses.values()), pod_ip=self.pod_ip, host_ip=self.host_ip,
            start_time=self.start_time, now=now_iso(), sandbox_dead=self.sandbox_dead,
            reason=self.status_reason, message=self.status_message)

    @property
    def phase(self) -> PodPhase:
        return status.pod_phase(self.restart_policy, list(self.statuses.values()),
                                self.sandbox_dead)

    async def _write_status(self) -> None:
        if self._gone:
            return
        new = self.compute_status()
        if new == self._last_status:
            return
        obj = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid},
               "status": new}
        try:
            await self.ctx.store.update_status(obj)
        except ApiError as e:  # NotFound / Conflict (recreated under the same name)
            log.debug("pod %s/%s: status not written: %s", self.namespace, self.name, e)
            return
        self._last_status = new

    async def _event(self, type_: str, reason: str, message: str) -> None:
        if self._gone:
            return
        try:
            await self.ctx.store.record_event(self.pod, type_, reason, message)
        except Exception as e:  # noqa: BLE001 - events are best effort
            log.debug("pod %s: event %s not recorded: %s", self.uid, reason, e)


def _signal_process(proc: spawn.ContainerProcess, sig: int) -> None:
    """Signal the container's shim (it forwards to the app), only if it is still the same
    process: a pidfd pins the pid while we compare the start time."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return
    try:
        if syscalls.proc_start_time(proc.pid) == proc.start_time:
            signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)
