"""Container supervision: one `ContainerSupervisor` task per container of a running pod.

Each supervisor starts its container (or adopts the one a previous daemon started), runs its
postStart hook and then its probes while awaiting its exit (pidfd, no polling), records the
exit code and reason, and starts it again by its restart policy after the crash back-off,
until the pod stops. The restart policy is the pod's for app containers, OnFailure (Never in
a Never pod) for init containers, Always for native sidecars. Stopping a container runs its
preStop hook first, within the grace period (`shutdown`).
The pod worker (runtime/podworker.py) owns the pod's sandbox, phase and status; a
supervisor reaches it only through `PodSide`.
"""

from __future__ import annotations

import enum
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any, Protocol

import trio

from . import configwatch, hooks, layout, logfiles, records, spawn, status, syscalls, volumes
from .backoff import CrashBackoff
from .cgroups import CgroupDriver
from .containerspec import (
    ContainerConfigError,
    check_non_root,
    container_argv,
    container_env,
    container_limits,
    grace_seconds,
    isolation,
    run_as,
)
from .envresolve import MissingConfig
from .node import NodeContext, crash_point
from .probes import (
    ProbeError,
    ProbeHooks,
    ProbeKind,
    ProbeSpec,
    ProbeTarget,
    check,
    container_probes,
    run_container_probes,
)
from .sandbox import LiveSandbox, SpawnError
from .status import (
    ContainerStatus,
    RestartPolicy,
    TerminatedReason,
    WaitingReason,
)

from tinykube.model.meta import now_iso, parse_time

log = logging.getLogger("tinykube.runtime.podworker")

EXEC_PROBE_OUTPUT_LIMIT = 10_240  # bytes of an exec probe's output kept for its message
# After a preStop hook used up the grace period the container still gets this long between
# SIGTERM and SIGKILL (the kubelet's minimumGracePeriodInSeconds).
MIN_GRACE_AFTER_PRE_STOP = 2.0


class ContainerKind(enum.Enum):
    APP = "app"  # spec.containers
    INIT = "init"  # spec.initContainers, run to completion
    SIDECAR = "sidecar"  # spec.initContainers with restartPolicy Always


class PodSide(Protocol):
    """What a container's supervisor needs from its pod worker."""

    ctx: NodeContext
    pod: dict[str, Any]
    uid: str
    name: str
    namespace: str
    hostname: str
    restart_policy: RestartPolicy
    record: records.PodRecord
    resumed: bool
    live: LiveSandbox | None
    volume_paths: dict[str, Path]
    pod_files: dict[str, Path]

    @property
    def stopping(self) -> bool:
        """No more (re)starts."""

    @property
    def deleting(self) -> bool:
        """The Pod is being deleted."""

    async def until_stopping(self) -> None: ...
    inputs_version: int

    async def until_stopping_or_new_inputs(self, seen: int) -> None: ...
    def mark_dirty(self) -> None: ...
    async def save_record(self) -> None: ...
    async def event(self, type_: str, reason: str, message: str) -> None: ...


class ContainerSupervisor:
    def __init__(self, pod: PodSide, spec: dict[str, Any], index: int,
                 st: ContainerStatus, kind: ContainerKind = ContainerKind.APP) -> None:
        self.pod = pod
        self.spec = spec
        self.name: str = spec["name"]
        self.kind = kind
        self.where = (f"spec.containers[{index}]" if kind is ContainerKind.APP
                      else f"spec.initContainers[{index}]")
        self.status = st
        # Set once the first start was tried (or the container adopted): the pod worker
        # starts the next container then, as the kubelet starts them one after the other.
        self.launched = trio.Event()
        self.started_once = trio.Event()  # `started` became true (startup probe passed)
        self.finished = trio.Event()  # the supervisor returned
        self._exited = trio.Event()  # the current run's process exited
        self._shutting_down = False
        self.backoff = CrashBackoff(pod.ctx.backoff_policy, clock=trio.current_time)
        self.probes: dict[ProbeKind, ProbeSpec] = {}
        self.proc: spawn.ContainerProcess | None = None  # while it runs
        self._oom_before: int | None = None
        # The trio time the current run's process was spawned: its probes count from there.
        self._spawned_clock = 0.0
        # The last start failed for a ConfigMap/Secret that is not there: under any restart
        # policy the kubelet keeps trying (CreateContainerConfigError), sooner once it appears.
        self._missing_config = False

    @property
    def restart_policy(self) -> RestartPolicy:
        if self.kind is ContainerKind.SIDECAR:
            return RestartPolicy.ALWAYS
        if self.kind is ContainerKind.INIT:
            # A failed init container is retried unless the pod never restarts anything.
            return (RestartPolicy.NEVER if self.pod.restart_policy is RestartPolicy.NEVER
                    else RestartPolicy.ON_FAILURE)
        return self.pod.restart_policy

    # -- the loop ----------------------------------------------------------------------------
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Supervise until the container is done for good or the pod stops. `launched` is
        set once the first start (or adoption) has been tried and its postStart hook ran."""
        task_status.started()
        try:
            await self._supervise()
        finally:
            self.launched.set()
            self.finished.set()

    async def _supervise(self) -> None:
        adopted = self._adopt()
        while not self.pod.stopping:
            proc: spawn.ContainerProcess | None
            probe_clock: float | None = None
            post_start = True
            if adopted is not None:
                proc, probe_clock = adopted, self._adopted_probe_clock()
                self._load_probes(adopted=True)
                adopted, post_start = None, False  # it ran its hook under the last daemon
            else:
                proc = await self._try_start()
                probe_clock = self._spawned_clock
            exit_code: int | None = None
            if proc is not None:
                if self.pod.stopping:
                    signal_container(proc, signal.SIGTERM)  # started just as the stop began
                exit_code = await self._run_until_exit(proc, probe_clock, post_start)
                if self.pod.stopping or not status.should_restart(self.restart_policy,
                                                                  exit_code):
                    return
            else:
                self.launched.set()
                if self.restart_policy is RestartPolicy.NEVER and not self._missing_config:
                    self._cannot_run()
                    return
            if not await self._back_off(exit_code):
                return

    async def _back_off(self, exit_code: int | None) -> bool:
        """Wait out the crash back-off before the next start; False if the pod stopped."""
        st, pod = self.status, self.pod
        delay = self.backoff.exited()
        if exit_code is not None:
            st.mark_waiting(WaitingReason.CRASH_LOOP_BACK_OFF,
                            f"back-off {delay:g}s restarting failed container={self.name} "
                            f"pod={pod.name}_{pod.namespace}({pod.uid})")
            await pod.event("Warning", "BackOff", "Back-off restarting failed container "
                            f"{self.name} in pod {pod.name}_{pod.namespace}({pod.uid})")
        pod.mark_dirty()
        with trio.move_on_after(delay):
            if self._missing_config:
                await pod.until_stopping_or_new_inputs(self._inputs_seen)
            else:
                await pod.until_stopping()
        if pod.stopping:
            return False
        if exit_code is not None:
            st.restart_count += 1
        return True

    def _cannot_run(self) -> None:
        """restartPolicy Never and the container could not even start: it is done."""
        st = self.status
        st.mark_exited(128, TerminatedReason.CONTAINER_CANNOT_RUN, now_iso(),
                       st.state.get("waiting", {}).get("message"))
        self.pod.mark_dirty()

    def _load_probes(self, *, adopted: bool) -> None:
        self.probes = container_probes(self.spec, self.where)
        if adopted and self.status.started:  # it passed its startup probe already
            self.probes.pop(ProbeKind.STARTUP, None)

    # -- live restore ------------------------------------------------------------------------
    def _adopt(self) -> spawn.ContainerProcess | None:
        """The container process a previous daemon started, if it is still the same process.
        Its exit code will come from the shim's exit file."""
        pod, st = self.pod, self.status
        entry = pod.record.containers.get(self.name)
        if not pod.resumed or entry is None:
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

    def _adopted_probe_clock(self) -> float:
        """The trio time an adopted container started, so probes' initialDelaySeconds count
        from its real start, not from the daemon's restart (as the kubelet's prober does)."""
        started_at = parse_time(self.status.state.get("running", {}).get("startedAt"))
        age = time.time() - started_at if started_at is not None else 0.0
        return trio.current_time() - max(0.0, age)

    # -- one run -------------------------------------------------------------------------------
    async def _try_start(self) -> spawn.ContainerProcess | None:
        """Start the container; on failure the status says why and None is returned."""
        reason: WaitingReason
        error: Exception
        self._inputs_seen = self.pod.inputs_version
        try:
            self._load_probes(adopted=False)
            self._missing_config = False
            return await self._start()
        except MissingConfig as e:
            self._missing_config = True
            reason, error = WaitingReason.CREATE_CONTAINER_CONFIG_ERROR, e
        except (ContainerConfigError, ProbeError, volumes.VolumeError) as e:
            reason, error = WaitingReason.CREATE_CONTAINER_CONFIG_ERROR, e
        except (SpawnError, OSError) as e:
            reason, error = WaitingReason.RUN_CONTAINER_ERROR, e
        self.status.mark_waiting(reason, str(error))
        await self.pod.event("Warning", "Failed", f"Error: {error}")
        return None

    async def _start(self) -> spawn.ContainerProcess:
        pod, st, spec, name, where = self.pod, self.status, self.spec, self.name, self.where
        assert pod.live is not None
        ctx = pod.ctx
        skipped: list[str] = []
        env = container_env(pod.pod, spec, pod.hostname, pod.live.pod_ip, pod.live.host_ip,
                            where, lookup=configwatch.lookup_in(ctx.store, pod.namespace),
                            skipped=skipped)
        for message in skipped:
            await pod.event("Warning", "InvalidEnvironmentVariableNames", message)
        argv = container_argv(spec, env, where)
        limits = container_limits(spec, where)
        user, group = run_as(pod.pod, spec)
        check_non_root(pod.pod, spec)
        confinement = isolation(pod.pod, spec, where, ctx.hidden_paths)
        mounts = volumes.container_mounts(spec, pod.volume_paths, where,
                                          volumes.written_volumes(pod.pod))
        cwd = spec.get("workingDir") or None
        scratch = layout.pod_dir(ctx.root, pod.uid) / "workdirs" / name
        log_path = layout.log_file(ctx.root, pod.uid, name, st.restart_count)
        exit_file = layout.exit_file(ctx.run_dir, pod.uid, name, st.restart_count)
        cgroups = ctx.cgroups

        def prepare() -> tuple[volumes.BindMount | None, int]:
            """Blocking host work before the spawn, in ONE worker-thread hop (each hop held
            up every other pod's start in a scale-out)."""
            workdir = volumes.working_dir(cwd, mounts, scratch, where)
            # Keep this run's and the previous run's logs only (the kubelet keeps one dead
            # container per container): a crash loop must not pile up log files.
            logfiles.prune_runs(log_path.parent, st.restart_count - 1)
            cgroups.create_container(pod.uid, name, limits)
            kill_unrecorded_sync(cgroups, pod.uid, name, f"pod {pod.namespace}/{pod.name}")
            return workdir, cgroups.oom_kills(pod.uid, name)

        workdir, self._oom_before = await trio.to_thread.run_sync(prepare)
        if workdir is not None:
            mounts.append(workdir)
        entry = pod.record.containers.setdefault(name, records.ContainerRecord(name))
        entry.restart_count = st.restart_count
        entry.exit_file = str(exit_file)
        entry.process = None
        entry.exit_code = None
        await pod.save_record()  # record first, then act
        targets = {m.target for m in mounts}
        launch_mounts = [spawn.Mount(str(m.source), m.target, m.readonly) for m in mounts]
        if not (pod.pod.get("spec") or {}).get("hostNetwork"):  # else the host's, as there
            launch_mounts += [spawn.Mount(str(source), target, False)
                              for target, source in pod.pod_files.items()
                              if target not in targets]
        launch = spawn.ContainerLaunch(argv=argv, env=env, cwd=cwd,
                                       uid=user, gid=group, mounts=launch_mounts,
                                       log_path=str(log_path), exit_file=str(exit_file),
                                       isolation=confinement,
                                       log_max_bytes=ctx.log_max_bytes,
                                       log_max_files=ctx.log_max_files)
        if st.restart_count == 0:
            await pod.event("Normal", "Created", f"Created container {name}")
        proc = await spawn.spawn_container(pod.live.pause, cgroups, pod.uid, name, launch)
        # initialDelaySeconds counts from here, as the kubelet's prober counts from the
        # runtime's StartedAt: not from after the record write and the Started event below
        # (14-184 ms later, median 70, in a 20-replica rollout at load 1).
        self._spawned_clock = trio.current_time()
        crash_point("spawn")
        entry.process = records.ProcessRecord(proc.pid, proc.start_time)
        entry.started_at = now_iso()
        await pod.save_record()
        st.mark_running(proc.pid, entry.started_at)
        await pod.event("Normal", "Started", f"Started container {name}")
        return proc

    async def _run_until_exit(self, proc: spawn.ContainerProcess,
                              started: float | None = None, post_start: bool = True) -> int:
        """`started`: the trio time the container started (its spawn, or for an adopted one
        its start under the last daemon; None: now).
        `post_start`: run the postStart hook first (not for an adopted container)."""
        pod, st, name = self.pod, self.status, self.name
        self.proc = proc
        self._exited = trio.Event()
        self.backoff.started()
        pod.mark_dirty()
        started = trio.current_time() if started is None else started
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._after_start, started, post_start)
            exit_code = await spawn.wait_exit(proc)
            nursery.cancel_scope.cancel()
        self.proc = None
        self._exited.set()
        self.launched.set()  # it ended during its postStart hook
        if exit_code == spawn.EXIT_CODE_UNKNOWN:
            exit_code = status.SIGKILL_EXIT_CODE  # the shim itself was killed
        # cgroupspy reads the counter from a file: off trio's thread, which serves every pod.
        # Shielded: the exit is recorded below even when the daemon is stopping meanwhile.
        with trio.CancelScope(shield=True):
            oom_killed = await trio.to_thread.run_sync(self._oom_killed)
        reason = status.termination_reason(exit_code, oom_killed)
        st.mark_exited(exit_code, reason, now_iso())
        # A completed init container reports ready (the kubelet's prober manager does).
        st.ready = self.kind is ContainerKind.INIT and exit_code == 0
        entry = pod.record.containers.get(name)
        if entry is not None:
            entry.process = None
            entry.exit_code = exit_code  # a restarted daemon does not run a done init again
            await pod.save_record()  # off trio's thread, as every record write of a start
        if reason is TerminatedReason.OOM_KILLED:
            await pod.event("Warning", "OOMKilled",
                            f"Container {name} was killed: memory limit exceeded")
        pod.mark_dirty()
        return exit_code

    async def _after_start(self, started: float, post_start: bool) -> None:
        """postStart (the next container starts only after it, as the kubelet's start is
        synchronous), then the probes until the container exits."""
        handler = (self.spec.get("lifecycle") or {}).get("postStart")
        if post_start and handler:
            try:
                await self._run_hook(handler)
            except hooks.HookFailed as e:
                await self._post_start_failed(str(e))
                return
        self.launched.set()
        await run_container_probes(self.probes, started, self._probe_hooks(), self.name)

    async def _post_start_failed(self, message: str) -> None:
        """The kubelet kills a container whose postStart failed (its preStop runs, within the
        grace period); it is then restarted by its restart policy."""
        pod = self.pod
        log.info("pod %s/%s: postStart of %s failed: %s", pod.namespace, pod.name, self.name,
                 message)
        await pod.event("Warning", "FailedPostStartHook", message)
        self.launched.set()
        await self.stop(0 if pod.deleting else grace_seconds(pod.pod))

    def _hook_target(self) -> ProbeTarget:
        live = self.pod.live
        return ProbeTarget(live.netns_fd if live else -1, live.pod_ip if live else None,
                           self.pod.ctx.sockets, self._exec_for_probe)

    async def _run_hook(self, handler: dict[str, Any]) -> None:
        pod = self.pod
        await hooks.run_hook(handler, container=self.spec,
                             pod_ref=f"{pod.name}_{pod.namespace}({pod.uid})",
                             target=self._hook_target(), exec_command=self._exec_for_probe)

    def _oom_killed(self) -> bool:
        """Whether the cgroup's OOM-kill count rose during this run."""
        before = self._oom_before
        try:
            now = self.pod.ctx.cgroups.oom_kills(self.pod.uid, self.name)
        except Exception:  # noqa: BLE001 - the cgroup may be gone already during teardown
            now = before or 0
        self._oom_before = now
        return before is not None and now > before

    # -- probes --------------------------------------------------------------------------------
    def _probe_hooks(self) -> ProbeHooks:
        pod, st = self.pod, self.status
        live = pod.live
        target = ProbeTarget(live.netns_fd if live else -1, live.pod_ip if live else None,
                             pod.ctx.sockets, self._exec_for_probe)

        async def checker(spec: ProbeSpec) -> tuple[bool, str]:
            return await check(spec, target)

        async def set_started() -> None:
            st.started = True
            self.started_once.set()
            pod.mark_dirty()

        async def set_ready(ok: bool) -> None:
            st.ready = ok
            pod.mark_dirty()

        async def kill(message: str) -> None:
            await pod.event("Normal", "Killing", message)
            await self.stop(0 if pod.deleting else grace_seconds(pod.pod))

        return ProbeHooks(checker, set_started, set_ready, kill, pod.event)

    async def _exec_for_probe(self, argv: list[str], timeout: float) -> tuple[int, str]:
        process = await self.exec(argv)
        output = b""
        try:
            with trio.move_on_after(timeout) as scope:
                async with trio.open_nursery() as nursery:
                    async def drain(stream: Any) -> None:
                        nonlocal output
                        async for chunk in stream:
                            if len(output) < EXEC_PROBE_OUTPUT_LIMIT:
                                output += chunk
                    nursery.start_soon(drain, process.stdout)
                    nursery.start_soon(drain, process.stderr)
                    await process.wait()
            if scope.cancelled_caught:
                return -1, f"command timed out after {timeout:g}s"
            assert process.returncode is not None  # wait() returned
            return process.returncode, output.decode(errors="replace")
        finally:
            with trio.CancelScope(shield=True):
                if process.returncode is None:
                    process.kill()
                    await process.wait()
                for stream in (process.stdin, process.stdout, process.stderr):
                    if stream is not None:
                        await stream.aclose()

    # -- for the pod worker and the API server -----------------------------------------------
    async def exec(self, argv: list[str]) -> trio.Process:
        """A process in the running container."""
        pod, proc = self.pod, self.proc
        if pod.live is None or proc is None:
            raise SpawnError(f"container {self.name!r} of pod {pod.namespace}/{pod.name} "
                             "is not running")
        user, group = run_as(pod.pod, self.spec)
        env = container_env(pod.pod, self.spec, pod.hostname, pod.live.pod_ip,
                            pod.live.host_ip, f"container {self.name}",
                            lookup=configwatch.lookup_in(pod.ctx.store, pod.namespace))
        confinement = isolation(pod.pod, self.spec, f"container {self.name}",
                                pod.ctx.hidden_paths)
        return await spawn.exec_in_container(
            pod.live.pause, proc, argv, cgroups=pod.ctx.cgroups, pod_uid=pod.uid,
            name=self.name, env=env, cwd=self.spec.get("workingDir") or "/", uid=user,
            gid=group, isolation=confinement)

    def terminate(self) -> None:
        """SIGTERM to the running container (the shim forwards it to the app)."""
        if self.proc is not None:
            signal_container(self.proc, signal.SIGTERM)

    async def shutdown(self, deadline: float) -> None:
        """Stop the running container gracefully by the trio time `deadline`: its preStop
        hook first (aborted at the deadline or when the container exits; a failure is a
        FailedPreStopHook event and the stop goes on), then SIGTERM; returns once it exited
        or the time is up (the caller SIGKILLs). A second call only waits."""
        proc, exited = self.proc, self._exited
        if proc is None:
            return
        if self._shutting_down:
            with trio.move_on_at(deadline):
                await exited.wait()
            return
        self._shutting_down = True
        try:
            handler = (self.spec.get("lifecycle") or {}).get("preStop")
            if handler and deadline > trio.current_time():
                await self._pre_stop(handler, deadline, exited)
                deadline = max(deadline, trio.current_time() + MIN_GRACE_AFTER_PRE_STOP)
            if self.proc is proc:
                signal_container(proc, signal.SIGTERM)
            with trio.move_on_at(deadline):
                await exited.wait()
        finally:
            self._shutting_down = False

    async def _pre_stop(self, handler: dict[str, Any], deadline: float,
                        exited: trio.Event) -> None:
        pod = self.pod
        async with trio.open_nursery() as nursery:
            async def abort_on_exit() -> None:
                await exited.wait()
                nursery.cancel_scope.cancel()
            nursery.start_soon(abort_on_exit)
            with trio.move_on_at(deadline) as scope:
                try:
                    await self._run_hook(handler)
                except hooks.HookFailed as e:
                    await pod.event("Warning", "FailedPreStopHook", str(e))
            if scope.cancelled_caught:
                log.info("pod %s/%s: preStop of %s cut at the grace period", pod.namespace,
                         pod.name, self.name)
            nursery.cancel_scope.cancel()

    async def stop(self, grace: float) -> None:
        """preStop and SIGTERM, then SIGKILL the whole container cgroup after grace."""
        if self.proc is not None and grace > 0:
            await self.shutdown(trio.current_time() + grace)
        await trio.to_thread.run_sync(self.pod.ctx.cgroups.kill_all, self.pod.uid, self.name,
                                      signal.SIGKILL)


async def kill_unrecorded(cgroups: CgroupDriver, uid: str, name: str | None, who: str) -> None:
    """Kill what is in the pod's cgroup (name=None, before a new pause) or a container's
    (before a new start) although no record names it: a crash between a spawn and its
    record leaves such a process, and a (re)start must not run beside it. This also ends
    what an exited container's app left behind, as Kubernetes does before a restart."""
    await trio.to_thread.run_sync(kill_unrecorded_sync, cgroups, uid, name, who)


def kill_unrecorded_sync(cgroups: CgroupDriver, uid: str, name: str | None, who: str) -> None:
    """`kill_unrecorded` for callers already on a worker thread."""
    pids = cgroups.pids(uid, name)
    if pids:
        log.info("%s: killing %s left in %s's cgroup that no record names", who, sorted(pids),
                 f"container {name}" if name else "the pod")
        cgroups.kill_all(uid, name, signal.SIGKILL)


def signal_container(proc: spawn.ContainerProcess, sig: int) -> None:
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
