"""One pod worker per pod uid: makes processes match the Pod and reports them in its status.

Life of a pod, in the order the worker does it (every host resource is named after the uid,
so each step has an idempotent undo in `teardown` found by the uid alone):

  cgroup  -> <parent>/tinykube/pod-<uid>
  sandbox -> the pause process (net+uts+ipc namespaces), hostname = spec.hostname or name;
             then the pod record, written once, naming it
  network -> veth + address (status.podIP); hostIP is the bridge gateway
  (cgroup and sandbox are one worker-thread hop, network one host-thread call; a warm
  sandbox, runtime/warmpool.py, gives all three at once)
  files   -> /etc/hosts, /etc/hostname, /etc/resolv.conf in the pod dir (runtime/layout.py)
  volumes -> emptyDir / hostPath / persistentVolumeClaim
  init containers, in spec order, each to completion (a native sidecar, restartPolicy
  Always, is started and kept running; the next one starts once it is `started`), then the
  containers, in spec order, each supervised by its own task (runtime/containers.py):
  start, postStart, probes, await exit (pidfd, no polling), record the exit code and reason,
  restart by restartPolicy after the crash back-off. Once the app containers are done for
  good, the sidecars are stopped (last first).

The worker's own state is one `Phase`, changed only by `_enter` along `TRANSITIONS`;
deletion is an input (`Deletion`: none, graceful, or forced when the Pod left the store).

Stopping (deletionTimestamp): preStop hooks then SIGTERM to every container (app and init
containers first, then sidecars, last first), within the grace period, SIGKILL what is left
in the container cgroups, stop the pause, detach the network, remove cgroups,
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

import enum
import logging
import os
import shutil
import signal
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

from . import claims, configwatch, hostsfile, layout, records, status, volumes
from .backoff import CrashBackoff
from .cgroups import CgroupError
from .containers import ContainerKind, ContainerSupervisor
from .containerspec import grace_seconds
from .node import TEARDOWN_CRASH_STEP, NodeContext, crash_point
from .sandbox import (
    LiveSandbox,
    Sandbox,
    SandboxOptions,
    SpawnError,
    sandbox_alive,
    start_sandbox_sync,
    stop_sandbox,
    wait_pid_exit,
)
from .status import ContainerStatus, RestartPolicy, TerminatedReason, WaitingReason

from tinykube.model.errors import ApiError, NotFound
from tinykube.model.meta import now_iso

log = logging.getLogger("tinykube.runtime.podworker")


class Phase(enum.Enum):
    """Where a pod worker is in the life of its pod."""

    SETTING_UP = "SettingUp"  # building the sandbox; a failure is released, then retried
    RUNNING = "Running"  # containers supervised, restarted by restartPolicy
    STOPPING = "Stopping"  # no more (re)starts: deletion, pause death or containers done
    RELEASED = "Released"  # pause, address and cgroups given back; pod dir and record kept
    DONE = "Done"  # every trace removed, the Pod removed from the store


# The only moves a worker makes (`_enter` refuses any other). RELEASED -> SETTING_UP is the
# retry after a failed set-up; entering the phase one is in is a no-op (release is idempotent).
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.SETTING_UP: frozenset({Phase.RUNNING, Phase.RELEASED}),
    Phase.RUNNING: frozenset({Phase.STOPPING}),
    Phase.STOPPING: frozenset({Phase.RELEASED}),
    Phase.RELEASED: frozenset({Phase.SETTING_UP, Phase.DONE}),
    Phase.DONE: frozenset(),
}


class Deletion(enum.IntEnum):
    """What the API asked of the pod; it only ever rises."""

    NONE = 0
    GRACEFUL = 1  # deletionTimestamp set: stop containers within the grace period
    FORCED = 2  # the Pod is no longer in the store: stop now, write nothing more


@dataclass(frozen=True)
class PodFailure:
    """Why a pod failed although its containers did not (status.reason / message)."""

    reason: str
    message: str


SANDBOX_DIED = PodFailure("SandboxDied", "The pod's sandbox (pause process) exited")
# How often an emptyDir with a sizeLimit is measured (the kubelet's eviction manager looks
# every 10 s; a du of one pod's volume is cheap, and a runaway writer fills disks fast).
VOLUME_CHECK_SECONDS = 2.0
CLAIM_RECHECK_SECONDS = 1.0  # how often a pod waiting for a missing claim looks again
KILL_SWEEP_SECONDS = 0.5  # how often a stopping pod SIGKILLs containers that are still there


class SandboxGone(Exception):
    """A re-adopted pod's pause process died while no daemon watched it."""


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
        # Until it starts, a container in a pod with init containers is PodInitializing.
        first = status.waiting_state(WaitingReason.POD_INITIALIZING
                                     if self.init_specs else WaitingReason.CONTAINER_CREATING)
        self.statuses = {c["name"]: ContainerStatus(c["name"], image=c.get("image") or "",
                                                    state=dict(first))
                         for c in spec.get("containers") or []}
        self.init_statuses = {
            c["name"]: ContainerStatus(c["name"], image=c.get("image") or "", state=dict(first),
                                       restartable=_is_sidecar(c))
            for c in self.init_specs}
        # Regular init containers that exited 0 in this sandbox: not run again.
        self._init_done: set[str] = set()
        self.containers: dict[str, ContainerSupervisor] = {}
        self.phase = Phase.SETTING_UP
        self.deletion = Deletion.GRACEFUL if meta.get("deletionTimestamp") else Deletion.NONE
        self._changed = trio.Event()  # set (and replaced) on every phase or deletion change
        self.live: LiveSandbox | None = None
        # What status reports: the last sandbox's addresses (a finished pod keeps its podIP).
        self.pod_ip: str | None = None
        self.host_ip: str | None = None
        self.start_time: str | None = (pod.get("status") or {}).get("startTime")
        self.failure: PodFailure | None = None
        self.setup_error: str | None = None  # the last failed set-up, until one succeeds
        self._dirty = trio.Event()
        self._record_lock = trio.Lock()  # `save_record`: one write at a time, in call order
        # The pause died under restartPolicy Always/OnFailure: build a new sandbox (as the
        # kubelet's computePodActions does), then start the containers again.
        self._sandbox_changed = False
        self._done_for_good: set[str] = set()
        self.inputs_version = 0  # bumped when a ConfigMap/Secret the pod reads changes
        self.volume_paths: dict[str, Path] = {}
        self.pod_files: dict[str, Path] = {}
        self._last_status: dict[str, Any] | None = pod.get("status") or None
        if self.resumed:
            self._seed_adopted_statuses()
            self._seed_finished_init()

    # -- phase and deletion ------------------------------------------------------------------
    def _enter(self, phase: Phase) -> None:
        if phase is self.phase:
            return
        if phase not in TRANSITIONS[self.phase]:
            raise RuntimeError(f"pod {self.uid}: no move from {self.phase.value} to "
                               f"{phase.value}")
        log.debug("pod %s/%s: %s -> %s", self.namespace, self.name, self.phase.value,
                  phase.value)
        self.phase = phase
        self._notify()

    def _request_deletion(self, deletion: Deletion) -> None:
        if deletion > self.deletion:
            self.deletion = deletion
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()

    @property
    def stopping(self) -> bool:
        """No more (re)starts of containers."""
        return self.phase in (Phase.STOPPING, Phase.RELEASED, Phase.DONE)

    @property
    def deleting(self) -> bool:
        return self.deletion is not Deletion.NONE

    @property
    def gone(self) -> bool:
        """The Pod is no longer in the store: nothing more is written for it."""
        return self.deletion is Deletion.FORCED

    async def until_stopping(self) -> None:
        await self._until(lambda: self.stopping)

    def inputs_changed(self) -> None:
        """A ConfigMap or Secret the pod reads changed or appeared (runtime/configwatch.py):
        a set-up or a container start waiting for it tries again now."""
        self.inputs_version += 1
        self._notify()

    async def until_deleting_or_new_inputs(self, seen: int) -> None:
        await self._until(lambda: self.deleting or self.inputs_version != seen)

    async def until_stopping_or_new_inputs(self, seen: int) -> None:
        await self._until(lambda: self.stopping or self.inputs_version != seen)

    async def _until_deleting(self) -> None:
        await self._until(lambda: self.deleting)

    # -- inputs from the kubelet -----------------------------------------------------------
    def observe(self, pod: dict[str, Any]) -> None:
        """A newer version of our Pod from the watch."""
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self._request_deletion(Deletion.GRACEFUL)
            self._notify()  # a later delete may have shortened the grace period

    def forget(self) -> None:
        """The Pod was removed from the store (force delete): stop now, no grace."""
        self._request_deletion(Deletion.FORCED)

    async def save_record(self, *, only_if_present: bool = False) -> None:
        """Write the pod record off trio's thread (a file replace costs ms on a loaded disk,
        and trio's thread serves every pod). The snapshot is taken now; writes go one at a
        time in call order (trio.Lock is FIFO). Shielded: once asked for, the write happens
        (a process already spawned must be on record even when the daemon is stopping).
        `only_if_present`: rewrite a record that exists, never create one."""
        data = records.encode(self.record)
        write = records.rewrite_encoded if only_if_present else records.write_encoded
        with trio.CancelScope(shield=True):
            async with self._record_lock:
                await trio.to_thread.run_sync(write, self.ctx.run_dir, self.uid, data)

    @property
    def pod_dir(self) -> Path:
        return layout.pod_dir(self.ctx.root, self.uid)

    def hosts_entry(self) -> hostsfile.HostEntry | None:
        if self.live is None or self.failure is not None:
            return None
        return hostsfile.HostEntry(self.live.pod_ip, self.hostname, self.subdomain,
                                   self.namespace)

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
        if (self.deleting and not self.resumed) or phase in ("Succeeded", "Failed"):
            # Nothing to run: a pod deleted before it started, or a finished one (a previous
            # daemon may have left parts of it: release them).
            await self._release_runtime()
        elif not await self._set_up_until_ok():
            if not self.deleting:  # the pause died while no daemon watched
                await self._fail_sandbox_gone()
        else:
            await self._run_containers()
            while self._sandbox_changed and not self.deleting:
                if not await self._rebuild_sandbox():
                    break
                await self._run_containers()
            if not self.deleting:
                # Finished (or pause died): give back the pause, address and cgroups now.
                await self._release_runtime()
                await self._write_status()
        await self._until_deleting()
        await self._delete()

    @property
    def init_specs(self) -> list[dict[str, Any]]:
        return (self.pod.get("spec") or {}).get("initContainers") or []

    async def _run_containers(self) -> None:
        """RUNNING until every container is done for good or the pod stops."""
        self._enter(Phase.RUNNING)
        containers_done = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_pause)
            if volumes.size_limits(self.pod):
                nursery.start_soon(self._watch_volume_usage)
            nursery.start_soon(self._watch_deletion, containers_done)
            async with trio.open_nursery() as sidecars:
                if await self._initialize(sidecars):
                    async with trio.open_nursery() as containers:
                        specs = (self.pod.get("spec") or {}).get("containers") or []
                        for index, spec in enumerate(specs):
                            if spec["name"] in self._done_for_good:
                                continue  # succeeded under OnFailure: not started again
                            supervisor = ContainerSupervisor(self, spec, index,
                                                             self.statuses[spec["name"]])
                            self.containers[supervisor.name] = supervisor
                            containers.start_soon(supervisor.run)
                            await supervisor.launched.wait()
                # The app containers are done for good (or the pod stops, or an init
                # container failed for good): sidecars do not keep the pod going.
                self._enter(Phase.STOPPING)
                await self._stop_sidecars()
            # The deletion watcher has nothing left to wait for and the pause watcher must
            # not outlive us.
            containers_done.set()
            nursery.cancel_scope.cancel()

    async def _initialize(self, sidecars: trio.Nursery) -> bool:
        """Run the init containers in order, each to completion; start native sidecars into
        `sidecars` and wait until each is started. False if the pod stops first or an init
        container failed for good (restartPolicy Never)."""
        for index, spec in enumerate(self.init_specs):
            name = spec["name"]
            if name in self._init_done:
                continue
            sidecar = _is_sidecar(spec)
            supervisor = ContainerSupervisor(
                self, spec, index, self.init_statuses[name],
                ContainerKind.SIDECAR if sidecar else ContainerKind.INIT)
            self.containers[name] = supervisor
            if sidecar:
                sidecars.start_soon(supervisor.run)
                await self._until_or_stopping(supervisor.started_once)
            else:
                await supervisor.run()
                if self.init_statuses[name].exit_code == 0:
                    self._init_done.add(name)
                elif not self.stopping:
                    log.info("pod %s/%s: init container %s failed for good", self.namespace,
                             self.name, name)
                    return False
            if self.stopping:
                return False
        return True

    async def _until_or_stopping(self, event: trio.Event) -> None:
        async with trio.open_nursery() as nursery:
            async def stop_waiting() -> None:
                await self.until_stopping()
                nursery.cancel_scope.cancel()
            nursery.start_soon(stop_waiting)
            await event.wait()
            nursery.cancel_scope.cancel()

    def _sidecars(self) -> list[ContainerSupervisor]:
        return [s for s in self.containers.values() if s.kind is ContainerKind.SIDECAR]

    async def _stop_sidecars(self) -> None:
        """Sidecars stop after the app containers, last first, within the grace period
        (a deletion stops them through `_watch_deletion` the same way)."""
        sidecars = self._sidecars()
        if not sidecars:
            return
        deadline = trio.current_time() + (0.0 if self.gone else grace_seconds(self.pod))
        for supervisor in reversed(sidecars):
            await supervisor.shutdown(deadline)
        for supervisor in sidecars:
            while not supervisor.finished.is_set():
                await trio.to_thread.run_sync(self.ctx.cgroups.kill_all, self.uid,
                                              supervisor.name, signal.SIGKILL)
                with trio.move_on_after(KILL_SWEEP_SECONDS):
                    await supervisor.finished.wait()

    # -- set-up ------------------------------------------------------------------------------
    async def _set_up_until_ok(self) -> bool:
        """Set up the sandbox, retrying with back-off (as the kubelet retries sandbox creation);
        False if the pod was deleted meanwhile or its re-adopted pause is gone."""
        backoff = CrashBackoff(self.ctx.backoff_policy, clock=trio.current_time)
        while True:
            if not self.resumed and not await self._until_claims_exist():
                return False
            try:
                await self._set_up()
                return True
            except SandboxGone:
                return False
            except (SpawnError, CgroupError, OSError, volumes.VolumeError, ApiError) as e:
                if self.deleting:
                    return False
                log.warning("pod %s/%s: sandbox set-up failed: %s", self.namespace, self.name, e)
                if isinstance(e, volumes.MissingVolumeSource):
                    await self.event("Warning", "FailedMount", e.event_message)
                elif isinstance(e, volumes.VolumeError):  # the kubelet's volume manager's
                    await self.event("Warning", "FailedMount", f"MountVolume.SetUp failed: {e}")
                else:
                    await self.event("Warning", "FailedCreatePodSandBox",
                                     f"Failed to create pod sandbox: {e}")
                await self._set_up_failed(e)
                with trio.move_on_after(backoff.exited()):
                    # A missing ConfigMap/Secret that appears ends the wait early.
                    await self.until_deleting_or_new_inputs(self.inputs_version)
                if self.deleting:
                    return False
            except Exception as e:
                log.exception("pod %s/%s: unexpected set-up error", self.namespace, self.name)
                await self._set_up_failed(e)
                await self._until_deleting()
                return False

    async def _until_claims_exist(self) -> bool:
        """Kubernetes keeps a pod that mounts a PersistentVolumeClaim that does not exist
        Pending until the claim is created (tinykube has no provisioner: an existing claim is
        as good as bound). False if the pod was deleted meanwhile. A re-adopted pod is not
        held: its claim directories are already in use."""
        reported = False
        while not self.deleting:
            missing = sorted(name for namespace, name in claims.claims_mounted(self.pod)
                             if self.ctx.store.try_get(claims.KIND, namespace, name) is None)
            if not missing:
                return True
            if not reported:  # once: the claim's arrival is what ends the wait, not a retry
                await self.event("Warning", "FailedMount",
                                 f'Unable to attach or mount volumes: persistentvolumeclaim '
                                 f'"{missing[0]}" not found')
                self.setup_error = f'persistentvolumeclaim "{missing[0]}" not found'
                self.mark_dirty()
                reported = True
            with trio.move_on_after(CLAIM_RECHECK_SECONDS):
                await self._until_deleting()
        return False

    async def _set_up_failed(self, error: Exception) -> None:
        self.setup_error = f"sandbox set-up failed: {error}"
        self.mark_dirty()
        await self._release_runtime()

    async def _set_up(self) -> None:
        self._enter(Phase.SETTING_UP)
        # Before the first record is written, the store mark covers the pod's own version: a
        # store restored from before it is then caught (runtime/storemark.py).
        await self.ctx.cover_store_version(int(self.pod["metadata"].get("resourceVersion") or 0))
        pool = self.ctx.warm_pool
        with pool.setting_up() if pool is not None else nullcontext():
            # What configMap/secret volumes read, fetched here (the store is trio's).
            lookup = configwatch.snapshot(self.ctx.store, self.pod)
            warm = await self._claim_warm_sandbox()
            if warm is not None:
                # Pod dir and volumes (no tmpfs here: see `_may_use_warm_sandbox`), one hop.
                await trio.to_thread.run_sync(self._prepare_pod_dir, lookup)
                self.live = warm
            else:
                # cgroup, pod dir, volumes, pause and its record: one hop to a worker thread.
                self.live = await self._attach(
                    await trio.to_thread.run_sync(self._build_sandbox, lookup))
        self.pod_ip, self.host_ip = self.live.pod_ip, self.live.host_ip
        self.start_time = self.start_time or now_iso()
        await self._write_pod_files()
        self.setup_error = None
        self.mark_dirty()
        self.ctx.address_changed(self)

    def _prepare_pod_dir(self, lookup: configwatch.Lookup) -> None:
        self.pod_dir.mkdir(parents=True, exist_ok=True)
        self.volume_paths = volumes.prepare_volumes(self.pod, self.ctx.root, lookup)

    def _build_sandbox(self, lookup: configwatch.Lookup) -> Sandbox:
        """Blocking (worker thread): the pod cgroup, the pod dir and volumes, then the pause.
        The record is written once, naming the pause: until then every piece is found by the
        pod's uid alone (cgroup, pod dir, IPAM), which is what teardown and restore go by."""
        self.ctx.cgroups.create_pod(self.uid)
        crash_point("cgroup")
        # Volumes before the pause: its mount namespace is a copy of the host's taken when
        # it starts, and containers enter it, so a memory-backed emptyDir's tmpfs must
        # already be mounted then.
        self._prepare_pod_dir(lookup)
        return self._pause()

    def _pause(self) -> Sandbox:
        """The pod's pause process (blocking): re-adopted if the record names a live one,
        else new (recorded before anything else is built on it)."""
        pause = self.record.pause
        if pause and sandbox_alive(Sandbox(self.uid, pause.pid, pause.start_time)):
            return Sandbox(self.uid, pause.pid, pause.start_time)
        if pause and self.resumed:
            raise SandboxGone(f"pause process {pause.pid} exited while no daemon ran")
        # A crash between a spawn and its record leaves a pause no record names: it must
        # not run beside the new one.
        leftover = self.ctx.cgroups.pids(self.uid, None)
        if leftover:
            log.info("pod %s/%s: killing %s left in the pod's cgroup that no record names",
                     self.namespace, self.name, sorted(leftover))
            self.ctx.cgroups.kill_all(self.uid, None, signal.SIGKILL)
        sandbox = start_sandbox_sync(self.uid, self.hostname, self.ctx.cgroups,
                                     self.sandbox_options)
        crash_point("sandbox")
        self.record.pause = records.ProcessRecord(sandbox.pause_pid, sandbox.start_time)
        records.write_record(self.ctx.run_dir, self.record)
        return sandbox

    def _may_use_warm_sandbox(self) -> bool:
        """A pool sandbox is the default kind: own net/uts/ipc namespaces, no tmpfs volume
        (the pause's mount namespace was copied before any such mount existed)."""
        options = self.sandbox_options
        return (not self.resumed and self.record.pause is None
                and options == SandboxOptions()
                and not volumes.has_memory_volume(self.pod))

    async def _claim_warm_sandbox(self) -> LiveSandbox | None:
        pool = self.ctx.warm_pool
        if pool is None or not self._may_use_warm_sandbox():
            return None
        claimed = await pool.claim(self.uid, self.hostname, self.record)
        if claimed is None:
            return None
        sandbox, attachment = claimed
        try:
            netns_fd = os.open(f"/proc/{sandbox.pause_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise SpawnError(f"warm sandbox of pod {self.uid}: its pause is gone: {e}") from e
        crash_point("veth")
        return LiveSandbox(sandbox, netns_fd, attachment.ip, attachment.gateway)

    async def _attach(self, pause: Sandbox) -> LiveSandbox:
        """Attach the pause's network namespace: the sandbox is whole, or this raises and
        leaves only what the record names (released by `_release_runtime`)."""
        netns_fd = os.open(f"/proc/{pause.pause_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        if self.sandbox_options.host_network:
            # On the host's network the pod's address is the node's (as pods see it).
            gateway = self.ctx.network.gateway
            return LiveSandbox(pause, netns_fd, gateway, gateway)
        try:
            attachment = await self.ctx.network.attach(self.uid, pause.pause_pid)
        except BaseException:
            os.close(netns_fd)
            raise
        crash_point("veth")
        return LiveSandbox(pause, netns_fd, attachment.ip, attachment.gateway)

    @property
    def sandbox_options(self) -> SandboxOptions:
        spec = self.pod.get("spec") or {}
        return SandboxOptions(host_network=spec.get("hostNetwork") is True,
                              host_ipc=spec.get("hostIPC") is True,
                              share_pid=spec.get("shareProcessNamespace") is True)

    async def _write_pod_files(self) -> None:
        """The pod's files at set-up. Without a subdomain a pod has no peers, so nothing else
        ever rewrites its files: they are written off trio's thread (three file writes, ms
        each on a loaded disk, were ~10% of trio's thread in a scale-out). With one, the
        write stays on trio's thread, in order with the rewrites its peers' changes cause."""
        if self.subdomain:
            self.write_hosts()
        else:
            self._pod_files_written(await trio.to_thread.run_sync(self._pod_files_writer([])))

    def write_hosts(self) -> None:
        """(Re)write the pod's files in place; the kubelet calls it when subdomain peers change."""
        self._pod_files_written(self._pod_files_writer(self.ctx.hosts_peers(self))())

    def _pod_files_writer(self, peers: list[hostsfile.HostEntry]
                          ) -> Callable[[], dict[str, Path] | None]:
        """A blocking call that writes the pod's files (None if its dir is gone), its inputs
        taken now."""
        namespace = self.pod["metadata"].get("namespace") or "default"
        return partial(_write_pod_files_if_dir, self.pod_dir, self.hosts_entry(), peers,
                       self.hostname, hostsfile.resolv_conf(namespace, self.ctx.cluster_dns))

    def _pod_files_written(self, files: dict[str, Path] | None) -> None:
        if files is not None:
            self.pod_files = files

    def _seed_adopted_statuses(self) -> None:
        """Carry over what the last status said of containers a previous daemon started, so
        a restart that finds them as they were writes nothing: no Ready blip, no restarted
        clock. As the kubelet does after its own restart, a container with a readiness probe
        is unready until that probe passes again; one without stays ready."""
        last_status = self._last_status or {}
        previous = {cs.get("name"): cs for cs in [
            *(last_status.get("containerStatuses") or []),
            *(last_status.get("initContainerStatuses") or [])]}
        app_specs = (self.pod.get("spec") or {}).get("containers") or []
        specs = {c["name"]: c for c in [*app_specs, *self.init_specs]}
        for name, entry in self.record.containers.items():
            st, last = self.statuses.get(name) or self.init_statuses.get(name), previous.get(name)
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

    def _seed_finished_init(self) -> None:
        """After a daemon restart, init containers that completed are not run again: one
        whose record says it exited 0, and every one once an app container has started (the
        pod was initialized, as the kubelet judges it)."""
        started_apps = any(name in self.record.containers for name in self.statuses)
        previous = {cs.get("name"): cs for cs in
                    (self._last_status or {}).get("initContainerStatuses") or []}
        for spec in self.init_specs:
            name = spec["name"]
            entry = self.record.containers.get(name)
            if _is_sidecar(spec) or not (started_apps or (entry and entry.exit_code == 0)):
                continue
            self._init_done.add(name)
            st = self.init_statuses[name]
            st.restart_count = entry.restart_count if entry else 0
            last = previous.get(name) or {}
            if (last.get("state") or {}).get("terminated", {}).get("exitCode") == 0:
                st.state, st.last_state = last["state"], last.get("lastState") or {}
                st.container_id = last.get("containerID")
            else:
                st.state = status.terminated_state(0, TerminatedReason.COMPLETED,
                                                   entry.started_at if entry else None,
                                                   now_iso())
            st.ready = True

    # -- for the API server --------------------------------------------------------------------
    async def exec(self, container: str | None, argv: list[str]) -> trio.Process:
        """A process in a running container (default: the first)."""
        names = list(self.statuses)
        name = container or (names[0] if names else "")
        if name not in self.statuses and name not in self.init_statuses:
            raise NotFound(f'container "{name}" is not valid for pod "{self.name}"')
        supervisor = self.containers.get(name)
        if supervisor is None:
            raise SpawnError(f"container {name!r} of pod {self.namespace}/{self.name} "
                             "is not running")
        return await supervisor.exec(argv)

    # -- stopping ------------------------------------------------------------------------------
    async def _watch_deletion(self, containers_done: trio.Event) -> None:
        await self._until_deleting()
        self._enter(Phase.STOPPING)
        grace = 0.0 if self.gone else grace_seconds(self.pod)
        await self.event("Normal", "Killing", "Stopping containers"
                         + (f" (grace period {grace:g}s)" if grace else ""))
        if grace > 0:
            with trio.CancelScope() as cut_short:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._cut_when_grace_shortened, cut_short, grace)
                    await self._stop_gracefully(trio.current_time() + grace, containers_done)
                    nursery.cancel_scope.cancel()
        # SIGKILL until every supervisor is done: a container whose start was under way when
        # the stop began comes up after the first sweep (and, as PID 1, ignores the SIGTERM
        # its supervisor sends it), so one sweep could leave it running with no pod.
        while not containers_done.is_set():
            for name in [*self.statuses, *self.init_statuses]:
                await trio.to_thread.run_sync(self.ctx.cgroups.kill_all, self.uid, name,
                                              signal.SIGKILL)
            with trio.move_on_after(KILL_SWEEP_SECONDS):
                await containers_done.wait()

    async def _stop_gracefully(self, deadline: float, containers_done: trio.Event) -> None:
        # App and init containers first (preStop, SIGTERM), then the sidecars they may
        # still use, last first, as the kubelet orders it.
        async with trio.open_nursery() as stopping:
            for supervisor in list(self.containers.values()):
                if supervisor.kind is not ContainerKind.SIDECAR:
                    stopping.start_soon(supervisor.shutdown, deadline)
        for supervisor in reversed(self._sidecars()):
            await supervisor.shutdown(deadline)
        with trio.move_on_at(deadline):
            await containers_done.wait()

    async def _cut_when_grace_shortened(self, graceful_stop: trio.CancelScope,
                                        grace: float) -> None:
        """A second delete with a shorter grace period, or a forced one, ends the graceful
        stop at the new, earlier end (the kubelet restarts the kill with the shorter period);
        the caller's SIGKILL sweep follows. Never lengthened."""
        while True:
            await self._changed.wait()
            shorter = 0.0 if self.gone else min(grace, grace_seconds(self.pod))
            if shorter < grace:
                grace = shorter
                graceful_stop.deadline = min(graceful_stop.deadline,
                                             trio.current_time() + grace)

    async def _fail_sandbox_gone(self) -> None:
        self.failure = SANDBOX_DIED
        for st in self.statuses.values():
            if st.running:
                st.mark_exited(status.SIGKILL_EXIT_CODE, TerminatedReason.ERROR, now_iso())
        await self._release_runtime()
        await self._write_status()

    async def _watch_pause(self) -> None:
        assert self.live is not None
        pause = self.live.pause
        await wait_pid_exit(pause.pause_pid, pause.start_time)
        if self.stopping:
            return
        if self.restart_policy is not RestartPolicy.NEVER:
            log.warning("pod %s/%s: pause process %d died: re-creating the sandbox",
                        self.namespace, self.name, pause.pause_pid)
            self._sandbox_changed = True
            self._enter(Phase.STOPPING)
            await self.event("Normal", "SandboxChanged",
                             "Pod sandbox changed, it will be killed and re-created.")
            await trio.to_thread.run_sync(self.ctx.cgroups.kill_all, self.uid, None,
                                          signal.SIGKILL)
            return
        # restartPolicy Never: the kubelet does not re-create the sandbox of a pod whose
        # containers have run; the pod is failed.
        log.warning("pod %s/%s: pause process %d died: failing the pod", self.namespace,
                    self.name, pause.pause_pid)
        self.failure = SANDBOX_DIED
        self._enter(Phase.STOPPING)
        # Report Failed now, so a ReplicaSet starts the replacement while this pod's remains
        # are cleaned up (the container states follow as the processes go).
        self.mark_dirty()
        await self.event("Warning", "SandboxChanged", "Pod sandbox died, the pod is failed")
        await trio.to_thread.run_sync(self.ctx.cgroups.kill_all, self.uid, None, signal.SIGKILL)

    async def _watch_volume_usage(self) -> None:
        """Evict the pod (Failed, reason Evicted, containers killed at once) when an emptyDir
        grows past its sizeLimit, as the kubelet's eviction manager does."""
        limits = volumes.size_limits(self.pod)
        while not self.stopping:
            await trio.sleep(VOLUME_CHECK_SECONDS)
            for name, limit in limits.items():
                path = self.volume_paths.get(name)
                if path is None:
                    continue
                used = await trio.to_thread.run_sync(volumes.disk_usage, path)
                if used > limit and not self.stopping:
                    await self._evict(f'Usage of EmptyDir volume "{name}" exceeds the limit '
                                      f'"{_quantity_text(self.pod, name)}". ')
                    return

    async def _evict(self, message: str) -> None:
        log.warning("pod %s/%s: evicted: %s", self.namespace, self.name, message)
        self.failure = PodFailure("Evicted", message)
        self._enter(Phase.STOPPING)
        self.mark_dirty()
        await self.event("Warning", "Evicted", message)
        await trio.to_thread.run_sync(self.ctx.cgroups.kill_all, self.uid, None,
                                      signal.SIGKILL)

    async def _rebuild_sandbox(self) -> bool:
        """After the pause died: release the old sandbox, set up a new one (new pause, new
        address) for the same pod, and count a restart for every container that will start
        again. False if there is nothing to start or the pod is being deleted."""
        self._sandbox_changed = False
        await self._release_runtime()
        specs = (self.pod.get("spec") or {}).get("containers") or []
        for spec in specs:
            st = self.statuses[spec["name"]]
            if self.restart_policy is RestartPolicy.ON_FAILURE and \
                    st.state.get("terminated", {}).get("exitCode") == 0:
                self._done_for_good.add(spec["name"])
        if all(spec["name"] in self._done_for_good for spec in specs):
            return False
        # A new sandbox runs the init containers again (Kubernetes: "if the Pod is
        # restarted, all init containers must execute again").
        self._init_done.clear()
        for spec in [*self.init_specs, *specs]:
            st = self.statuses.get(spec["name"]) or self.init_statuses[spec["name"]]
            if spec["name"] not in self._done_for_good and (st.state.get("terminated")
                                                            or st.state.get("running")):
                st.restart_count += 1
            entry = self.record.containers.get(spec["name"])
            if entry is not None:
                entry.process = None  # not to be re-adopted: it died with the sandbox
                entry.exit_code = None
        self.resumed = False
        self.mark_dirty()
        return await self._set_up_until_ok()

    async def _release_runtime(self, *, record_goes: bool = False) -> None:
        """Give back everything but the pod dir and the record. Idempotent. `record_goes`:
        the caller removes the record next (teardown), so it is not rewritten first."""
        with trio.CancelScope(shield=True):
            cgroups = self.ctx.cgroups
            try:
                await trio.to_thread.run_sync(cgroups.kill_all, self.uid, None, signal.SIGKILL)
            except Exception as e:  # noqa: BLE001 - best effort, logged
                log.warning("pod %s: killing its processes: %s", self.uid, e)
            live, self.live = self.live, None
            pause = live.pause if live is not None else None
            if pause is None and self.record.pause is not None:
                pause = Sandbox(self.uid, self.record.pause.pid, self.record.pause.start_time)
            if pause is not None:
                await stop_sandbox(pause)
            if self.record.pause is not None:
                self.record.pause = None
                # A crash before the teardown's removal leaves the record naming a pause
                # that has exited: pid + start time never match again, and the restarted
                # worker of a deleted pod tears it down anyway.
                if not record_goes:
                    await self.save_record(only_if_present=True)
            if live is not None:
                os.close(live.netns_fd)
            try:
                await self.ctx.network.detach(self.uid)
            except Exception as e:  # noqa: BLE001 - best effort, logged
                log.warning("pod %s: detaching its network: %s", self.uid, e)
            try:
                await trio.to_thread.run_sync(cgroups.remove, self.uid, None)
            except Exception as e:  # noqa: BLE001 - best effort, logged
                log.warning("pod %s: removing its cgroups: %s", self.uid, e)
            if self.phase is not Phase.DONE:
                self._enter(Phase.STOPPING if self.phase is Phase.RUNNING else self.phase)
                self._enter(Phase.RELEASED)
            if live is not None:
                self.ctx.address_changed(self)  # peers drop our name from their hosts

    async def teardown(self) -> None:
        """Remove every trace of the pod on the host (not persistent volumes). Idempotent."""
        await self._release_runtime(record_goes=True)
        crash_point(TEARDOWN_CRASH_STEP)
        with trio.CancelScope(shield=True):
            async with self._record_lock:  # after any record write still queued
                await trio.to_thread.run_sync(_remove_pod_files, self.pod_dir,
                                              self.ctx.run_dir, self.uid)

    async def _delete(self) -> None:
        await self.teardown()
        if not self.gone:
            # As the kubelet since Kubernetes 1.27: with its containers stopped the pod is
            # written with its terminal phase (Succeeded if all exited 0, else Failed), whatever
            # the restart policy, before the object goes; a watcher (or a finalizer's owner)
            # sees how it ended. A pod being deleted is already out of every controller's
            # count, so the terminal phase changes no replica arithmetic.
            await self._write_status()
            try:
                await self.ctx.store.delete("Pod", self.namespace, self.name, grace_period=0,
                                            uid=self.uid)
            except NotFound:
                pass
        self._enter(Phase.DONE)

    # -- status and events --------------------------------------------------------------------
    def mark_dirty(self) -> None:
        self._dirty.set()

    async def _publish_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty = trio.Event()
            await self._write_status()

    def compute_status(self) -> dict[str, Any]:
        failure = self.failure
        return status.pod_status(
            self._last_status, restart_policy=self.restart_policy,
            containers=list(self.statuses.values()), pod_ip=self.pod_ip, host_ip=self.host_ip,
            start_time=self.start_time, now=now_iso(), sandbox_dead=failure is not None,
            terminal=self.phase in (Phase.RELEASED, Phase.DONE) and self.deleting,
            init_containers=list(self.init_statuses.values()),
            reason=failure.reason if failure else None,
            message=failure.message if failure else self.setup_error)

    async def _write_status(self) -> None:
        if self.gone:
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

    async def event(self, type_: str, reason: str, message: str) -> None:
        if self.gone:
            return
        try:
            await self.ctx.store.record_event(self.pod, type_, reason, message,
                                              source="kubelet")
        except Exception as e:  # noqa: BLE001 - events are best effort
            log.debug("pod %s: event %s not recorded: %s", self.uid, reason, e)


def _write_pod_files_if_dir(pod_dir: Path, own: hostsfile.HostEntry | None,
                            peers: list[hostsfile.HostEntry], hostname: str,
                            resolv: str) -> dict[str, Path] | None:
    """Blocking: a pod's files, unless its dir is gone (the pod was torn down meanwhile)."""
    if not pod_dir.is_dir():
        return None
    return hostsfile.write_pod_files(pod_dir, own, peers, hostname, resolv)


def _remove_pod_files(pod_dir: Path, run_dir: Path, uid: str) -> None:
    """Blocking: the pod dir (tmpfs volumes unmounted first), its exit codes and its record,
    in one worker-thread hop (they were four hops, the record's removal on trio's thread)."""
    volumes.unmount_below(pod_dir)
    for path in (pod_dir, layout.exit_dir(run_dir, uid)):
        shutil.rmtree(path, ignore_errors=True)
    records.remove_record(run_dir, uid)  # last: until now it names what is left


def _is_sidecar(spec: dict[str, Any]) -> bool:
    """A native sidecar: an init container with restartPolicy Always (Kubernetes 1.29+)."""
    return spec.get("restartPolicy") == "Always"


def _quantity_text(pod: dict[str, Any], volume: str) -> str:
    for v in (pod.get("spec") or {}).get("volumes") or []:
        if v.get("name") == volume:
            return str((v.get("emptyDir") or {}).get("sizeLimit"))
    return "?"
