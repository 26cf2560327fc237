"""The Deployment controller: rolls a pod template out through ReplicaSets.

Each distinct `spec.template` is one ReplicaSet named `<deployment>-<pod-template-hash>`,
owned by the Deployment and numbered by the `deployment.kubernetes.io/revision` annotation.
The controller only sizes ReplicaSets (the ReplicaSet controller makes their pods), following
Kubernetes' pkg/controller/deployment:

  decide.py    which kind of sync (paused, scaling, Recreate, RollingUpdate)
  planner.py   the Plan and the steps every strategy shares (find/create the new RS, scale,
               prune history)
  rolling.py   maxSurge / maxUnavailable rollout      recreate.py  stop all, then start
  sync.py      proportional scaling                  progress.py  status and conditions
  util.py      arithmetic, hashes, annotations       controller.py  read/decide/apply + run

This package's top stays free of trio and the store so the CLI can use `util` cheaply.
"""

from __future__ import annotations

from typing import Any


async def run(store: Any, *, task_status: Any = None) -> None:
    """Run the Deployment controller until cancelled (see controller.py)."""
    import trio

    from .controller import run as run_controller

    await run_controller(store, task_status=task_status or trio.TASK_STATUS_IGNORED)
