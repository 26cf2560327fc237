"""Warm sandboxes: a few pod sandboxes made ahead of time and handed to new pods.

A member is a whole default sandbox (the pause in its own net+uts+ipc+mount namespaces, in
its pod cgroup, with its veth on the bridge and an address) made under a pool uid
``w-<6 hex digits>``. Every host resource is named after that uid exactly as a pod's is
(cgroup ``pod-w-…``, veth ``tkvw-…``, the IPAM entry), so the address belongs to the pool
until a pod claims it, and whatever the daemon leaves behind is found by the usual means:
`reset` kills the cgroup subtree and removes the bridge's veths; a restarted daemon's
restore finds ``pod-w-…`` cgroups whose uid is no pod and discards them (pool members are
not re-adopted: a fresh pool is built in the background instead).

Claiming one (`claim`) is one call on the host netlink thread: the IPAM entry and the host
veth are renamed to the pod's uid, the cgroup directories are renamed (processes stay in
them), the hostname is set inside the pause's UTS namespace, and the pod record naming the
pause is written. That replaces the cold path's cgroup creation, pause spawn (whose first
cgroup.procs write waits for an RCU grace period on cgroup v1) and veth creation. On any
failure the half-claimed member is discarded under both uids and the pod starts cold.

The pool refills one member at a time, only after pod set-ups have paused for
`QUIET_SECONDS`: building sandboxes never competes with starting pods (a scale-out drains
the pool once and then runs cold until it is over). Pods that need another kind of sandbox
(hostNetwork, hostIPC, shareProcessNamespace, a memory-backed emptyDir) always start cold.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from . import records, syscalls
from .cgroups import CgroupDriver
from .sandbox import Sandbox, sandbox_alive, start_sandbox_sync, stop_sandbox

if TYPE_CHECKING:
    from tinykube.netns.podnet import Attachment, PodNetwork

log = logging.getLogger("tinykube.runtime.warmpool")

POOL_UID_PREFIX = "w-"  # pod uids are UUIDs: never this
WARM_HOSTNAME = "tinykube-warm"
DEFAULT_SIZE = 3
QUIET_SECONDS = 0.05  # refill only once no pod has been setting up for this long
RETRY_SECONDS = 5.0  # after a member could not be made


def is_pool_uid(uid: str) -> bool:
    return uid.startswith(POOL_UID_PREFIX)


def new_pool_uid() -> str:
    # 8 characters: the veth name keeps all of them (tkv + uid[:8]).
    return POOL_UID_PREFIX + secrets.token_hex(3)


@dataclass(frozen=True)
class Member:
    uid: str
    sandbox: Sandbox
    attachment: Attachment


def set_hostname(pause_pid: int, hostname: str, home_uts_fd: int) -> None:
    """sethostname inside the pause's UTS namespace, from this thread (setns on a UTS
    namespace moves only the calling thread); back home before returning."""
    fd = os.open(f"/proc/{pause_pid}/ns/uts", os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(fd, syscalls.CLONE_NEWUTS)
        try:
            socket.sethostname(hostname)
        finally:
            syscalls.setns(home_uts_fd, syscalls.CLONE_NEWUTS)
    finally:
        os.close(fd)


class WarmPool:
    """`size` warm sandboxes (0: none, every pod starts cold)."""

    def __init__(self, size: int, cgroups: CgroupDriver, network: PodNetwork,
                 run_dir: Path) -> None:
        if size < 0:
            raise ValueError(f"warm sandboxes: {size} is negative")
        self.size = size
        self._cgroups = cgroups
        self._network = network
        self._run_dir = run_dir
        self._ready: deque[Member] = deque()
        self._setups = 0  # pod set-ups under way
        self._changed = trio.Event()
        self._home_uts_fd = -1
        self.claimed = 0  # members handed to pods (for logs and tests)

    def ready(self) -> list[str]:
        """The uids of the members ready to be claimed."""
        return [m.uid for m in self._ready]

    # -- the pod worker's side -----------------------------------------------------------
    @contextmanager
    def setting_up(self) -> Iterator[None]:
        """Around a pod's set-up: the pool does not refill meanwhile."""
        self._setups += 1
        try:
            yield
        finally:
            self._setups -= 1
            self._notify()

    async def claim(self, pod_uid: str, hostname: str, record: records.PodRecord
                    ) -> tuple[Sandbox, Attachment] | None:
        """A ready sandbox, now the pod's (cgroup, veth, address, hostname, `record` written
        naming its pause); None when the pool is empty or the claim failed (start cold)."""
        while self._ready:
            member = self._ready.popleft()
            self._notify()
            if not sandbox_alive(member.sandbox):
                log.warning("warm sandbox %s: its pause %d died; discarding it", member.uid,
                            member.sandbox.pause_pid)
                await self._discard(member.uid, member.sandbox)
                continue
            return await self._hand_over(member, pod_uid, hostname, record)
        return None

    async def _hand_over(self, member: Member, pod_uid: str, hostname: str,
                         record: records.PodRecord) -> tuple[Sandbox, Attachment] | None:
        pause = member.sandbox

        def finish() -> None:  # on the host netlink thread, after the veth's rename
            self._cgroups.rename_pod(member.uid, pod_uid)
            set_hostname(pause.pause_pid, hostname, self._home_uts_fd)
            record.pause = records.ProcessRecord(pause.pause_pid, pause.start_time)
            records.write_record(self._run_dir, record)

        try:
            attachment, _ = await self._network.hand_over(member.uid, pod_uid, finish)
        except Exception as e:  # noqa: BLE001 - the pod starts cold; logged
            log.warning("pod %s: claiming warm sandbox %s failed (%s); starting cold",
                        pod_uid, member.uid, e)
            record.pause = None
            await self._discard(member.uid, pause, also_uid=pod_uid)
            return None
        self.claimed += 1
        log.debug("pod %s: got warm sandbox %s (pause %d)", pod_uid, member.uid,
                  pause.pause_pid)
        return Sandbox(pod_uid, pause.pause_pid, pause.start_time), attachment

    # -- refill ---------------------------------------------------------------------------
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Keep `size` members ready; on cancellation (daemon stop) discard them all."""
        self._home_uts_fd = os.open("/proc/thread-self/ns/uts", os.O_RDONLY | os.O_CLOEXEC)
        task_status.started()
        try:
            while True:
                if len(self._ready) >= self.size or self._setups:
                    await self._changed.wait()
                    continue
                with trio.move_on_after(QUIET_SECONDS) as quiet:
                    await self._changed.wait()
                if not quiet.cancelled_caught:
                    continue  # something happened: look again
                try:
                    self._ready.append(await self._make())
                except Exception as e:  # noqa: BLE001 - pods start cold meanwhile; logged
                    log.warning("making a warm sandbox failed: %s", e)
                    await trio.sleep(RETRY_SECONDS)
        finally:
            with trio.CancelScope(shield=True):
                while self._ready:
                    member = self._ready.popleft()
                    await self._discard(member.uid, member.sandbox)
                os.close(self._home_uts_fd)
                self._home_uts_fd = -1

    async def _make(self) -> Member:
        uid = new_pool_uid()
        sandbox: Sandbox | None = None
        try:
            sandbox = await trio.to_thread.run_sync(self._build_pause, uid)
            attachment = await self._network.attach(uid, sandbox.pause_pid)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._discard(uid, sandbox)
            raise
        return Member(uid, sandbox, attachment)

    def _build_pause(self, uid: str) -> Sandbox:
        self._cgroups.create_pod(uid)
        return start_sandbox_sync(uid, WARM_HOSTNAME, self._cgroups)

    async def _discard(self, uid: str, sandbox: Sandbox | None,
                       also_uid: str | None = None) -> None:
        """Remove a member (and whatever of it already carries `also_uid`). Idempotent."""
        with trio.CancelScope(shield=True):
            for name in (uid, also_uid):
                if name is None:
                    continue
                try:
                    await trio.to_thread.run_sync(self._cgroups.kill_all, name, None,
                                                  signal.SIGKILL)
                except Exception as e:  # noqa: BLE001 - best effort, logged
                    log.warning("warm sandbox %s: killing its processes: %s", name, e)
            if sandbox is not None:
                await stop_sandbox(sandbox)
            for name in (uid, also_uid):
                if name is None:
                    continue
                try:
                    await self._network.detach(name)
                    await trio.to_thread.run_sync(self._cgroups.remove, name, None)
                except Exception as e:  # noqa: BLE001 - best effort, logged
                    log.warning("warm sandbox %s: removing it: %s", name, e)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()
