"""Leader election through a Lease, as kube-controller-manager does (client-go's
leaderelection): one of several servers holds `kube-system/<name>` and runs the controllers,
the scheduler and the node lifecycle controller; the others wait and take over when the
holder stops renewing.

Expiry is judged on the candidate's own monotonic clock from when it last saw the Lease
record change (not from the renewTime a possibly skewed clock wrote), so a takeover needs
`lease_seconds` of silence as observed here. Writes are compare-and-swap on the Lease's
resourceVersion: of two candidates racing for an expired Lease one gets a Conflict. A leader
that cannot renew within `renew_deadline` stops leading (its work is cancelled) before
another can take over.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .nodeobjects import micro_now
from .objects import Objects

from tinykube.model.errors import AlreadyExists, ApiError, Conflict, NotFound

log = logging.getLogger("tinykube.cluster.election")

LEADER_LEASE_NAMESPACE = "kube-system"
LEADER_LEASE_NAME = "tinykube-controller-manager"
LEASE_SECONDS = 15.0  # kube-controller-manager's --leader-elect-lease-duration
RENEW_DEADLINE = 10.0  # --leader-elect-renew-deadline
RETRY_PERIOD = 2.0  # --leader-elect-retry-period


class LeaderElector:
    def __init__(self, objects: Objects, identity: str, *, name: str = LEADER_LEASE_NAME,
                 lease_seconds: float = LEASE_SECONDS, renew_deadline: float = RENEW_DEADLINE,
                 retry_period: float | None = None) -> None:
        self.objects = objects
        self.identity = identity
        self.name = name
        self.lease_seconds = lease_seconds
        self.renew_deadline = min(renew_deadline, lease_seconds * 2 / 3)
        # client-go's defaults keep retry < renew deadline < lease; short test leases scale down.
        self.retry_period = retry_period or min(RETRY_PERIOD, lease_seconds / 4)
        self.leading = False
        self._observed: tuple[str | None, float] = (None, 0.0)  # (record rv, seen at)

    async def run(self, lead: Callable[[], Awaitable[None]], *,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Forever: wait to acquire the Lease, then run `lead()` while renewing it."""
        task_status.started()
        while True:
            await self._until_acquired()
            log.info("%s: leading (lease %s/%s)", self.identity, LEADER_LEASE_NAMESPACE,
                     self.name)
            self.leading = True
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._keep, nursery.cancel_scope)
                    await lead()
                    nursery.cancel_scope.cancel()
            finally:
                self.leading = False
            log.warning("%s: lost the leader lease; standing by", self.identity)

    async def _until_acquired(self) -> None:
        while True:  # polling is the protocol: the holder's silence is what we wait for
            if await self._try_acquire_or_renew():
                return
            await trio.sleep(self.retry_period)

    async def _keep(self, scope: trio.CancelScope) -> None:
        last_renewed = trio.current_time()
        while True:
            await trio.sleep(self.retry_period)
            if await self._try_acquire_or_renew():
                last_renewed = trio.current_time()
            elif trio.current_time() - last_renewed >= self.renew_deadline:
                scope.cancel()
                return

    async def _try_acquire_or_renew(self) -> bool:
        try:
            return await self._attempt()
        except (Conflict, AlreadyExists, NotFound):
            return False
        except (ApiError, OSError) as e:  # the store is away for a moment: not leading now
            log.warning("%s: leader election: %s", self.identity, e)
            return False

    async def _attempt(self) -> bool:
        now = trio.current_time()
        lease = await self.objects.get("Lease", LEADER_LEASE_NAMESPACE, self.name)
        if lease is None:
            await self.objects.create(self._record(None))
            self._observed = (None, now)
            return True
        rv = lease["metadata"].get("resourceVersion")
        if rv != self._observed[0]:
            self._observed = (rv, now)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        if holder and holder != self.identity and now - self._observed[1] < self.lease_seconds:
            return False  # someone else holds a lease that has not expired as seen from here
        updated = self._record(lease)
        written = await self.objects.update(updated)
        self._observed = (written["metadata"].get("resourceVersion"), now)
        return True

    def _record(self, current: dict[str, Any] | None) -> dict[str, Any]:
        lease: dict[str, Any] = copy.deepcopy(current) if current else {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name, "namespace": LEADER_LEASE_NAMESPACE}, "spec": {}}
        spec = lease.setdefault("spec", {})
        stamp = micro_now()
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = stamp
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (
                1 if spec.get("holderIdentity") else 0)
        spec.update(holderIdentity=self.identity, renewTime=stamp,
                    leaseDurationSeconds=max(1, round(self.lease_seconds)))
        return lease
