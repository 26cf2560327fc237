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
"""

from controllers.deployment.controller import controller_spec, reconcile, run
from controllers.deployment.decide import decide

__all__ = ["controller_spec", "decide", "reconcile", "run"]
