"""The kinds tinykube knows: one table, looked up by kind, plural, short name or group.

The CLI resolves what a user types (`po`, `Pods`, `deployment.apps`, `deploy`) with
`lookup`; the API server routes `/apis/<group>/<version>/<plural>` with `by_plural`. What
differs between kinds (who writes them, /scale, `get all`, rollout, wide columns) is a field
of `KindInfo`: adding a kind is adding one row to `KINDS`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KindInfo:
    kind: str
    api_version: str  # "v1", "apps/v1", "discovery.k8s.io/v1"
    group: str  # "" for the core group
    version: str
    plural: str
    short_names: tuple[str, ...]
    namespaced: bool = True
    user: bool = True  # users create and apply it (else only tinykube writes it; users read)
    workload: bool = False  # runs pods from a pod template: has /scale, wide CONTAINERS/COMMAND
    in_all: bool = False  # in `get all` (Kubernetes' category "all")
    rollout: bool = False  # `rollout status/history/undo/restart/pause/resume` work on it

    @property
    def scalable(self) -> bool:
        """Has the /scale subresource."""
        return self.workload

    @property
    def wide_columns(self) -> tuple[str, ...]:
        """The extra headers of `get -o wide` (and the Table's priority-1 columns)."""
        if self.kind == "Pod":
            return ("IP", "NODE")
        if self.kind == "Service":
            return ("SELECTOR",)
        if self.kind == "Node":
            return ("INTERNAL-IP", "POD-CIDR")
        return ("CONTAINERS", "COMMAND") if self.workload else ()

    @property
    def resource(self) -> str:
        """`pods`, `deployments.apps`: how Kubernetes names the resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """`Pod`, `Deployment.apps`: how Kubernetes names the kind in Invalid messages."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


def _info(kind: str, api_version: str, plural: str, *short: str, user: bool = True,
          workload: bool = False, in_all: bool = False, rollout: bool = False) -> KindInfo:
    group, _, version = api_version.rpartition("/")
    return KindInfo(kind, api_version, group, version, plural, tuple(short), True, user=user,
                    workload=workload, in_all=in_all or workload, rollout=rollout)


KINDS: tuple[KindInfo, ...] = (
    _info("Pod", "v1", "pods", "po", in_all=True),
    _info("ReplicationController", "v1", "replicationcontrollers", "rc", workload=True),
    _info("PersistentVolumeClaim", "v1", "persistentvolumeclaims", "pvc"),
    _info("Event", "v1", "events", "ev", user=False),
    _info("ReplicaSet", "apps/v1", "replicasets", "rs", workload=True),
    _info("Deployment", "apps/v1", "deployments", "deploy", workload=True, rollout=True),
    _info("StatefulSet", "apps/v1", "statefulsets", "sts", workload=True, rollout=True),
    _info("ControllerRevision", "apps/v1", "controllerrevisions", user=False),
    _info("Service", "v1", "services", "svc", in_all=True),
    _info("EndpointSlice", "discovery.k8s.io/v1", "endpointslices"),
    _info("ConfigMap", "v1", "configmaps", "cm"),
    _info("Secret", "v1", "secrets"),
    # Heartbeats of nodes (namespace kube-node-lease) and the control plane's leader election.
    _info("Lease", "coordination.k8s.io/v1", "leases"),
    # Cluster-scoped: stored under the namespace "default" (the store's key), served without.
    KindInfo("Node", "v1", "", "v1", "nodes", ("no",), namespaced=False),
    # Cluster-scoped; served by tinykube/api/namespaces.py, not the generic write path.
    KindInfo("Namespace", "v1", "", "v1", "namespaces", ("ns",), namespaced=False, user=False),
)

_BY_KIND = {k.kind: k for k in KINDS}
_BY_PLURAL = {(k.group, k.plural): k for k in KINDS}
_BY_NAME: dict[str, KindInfo] = {}
for _k in KINDS:
    for _name in (_k.kind, _k.plural, *_k.short_names):
        _BY_NAME[_name.lower()] = _k
        if _k.group:
            _BY_NAME[f"{_name}.{_k.group}".lower()] = _k


class UnknownKind(KeyError):
    """The name matches no kind; str() is the message to show the user."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown kind"


def by_kind(kind: str) -> KindInfo:
    """Exact kind name (`Deployment`); `UnknownKind` otherwise."""
    try:
        return _BY_KIND[kind]
    except KeyError:
        raise UnknownKind(f'no kind "{kind}" is registered') from None


def by_plural(group: str, plural: str) -> KindInfo:
    """Route lookup: group `""` or `"apps"`, plural `pods`; `UnknownKind` otherwise."""
    try:
        return _BY_PLURAL[(group, plural)]
    except KeyError:
        where = f"{group}/" if group else ""
        raise UnknownKind(f'the server could not find the requested resource "{where}{plural}"'
                          ) from None


def lookup(name: str) -> KindInfo:
    """What a CLI user types: kind, plural, singular or short name, any case, optionally
    qualified by group (`deployments.apps`)."""
    info = _BY_NAME.get(name.strip().lower())
    if info is None:
        raise UnknownKind(f'the server doesn\'t have a resource type "{name}"')
    return info


def find(name: str) -> KindInfo | None:
    """`lookup` without the exception."""
    return _BY_NAME.get(name.strip().lower())
