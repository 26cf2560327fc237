"""The StatefulSet controller: ordered, sticky-identity pods with per-ordinal claims.

Modules: `identity` (pod names, ordinals, identity/storage checks, building pods), `claims`
(PersistentVolumeClaim names, objects, retention policy), `revisions` (ControllerRevisions),
`plan` (the pure decision), `controller` (watch, queue, reconcile, apply).
"""

from .controller import reconcile, run

__all__ = ["reconcile", "run"]
