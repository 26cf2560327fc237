"""The kinds tinykube knows: one table, looked up by kind, plural, short name or group.

The CLI resolves what a user types (`po`, `Pods`, `deployment.apps`, `deploy`) with
`lookup`; the API server routes `/apis/<group>/<version>/<plural>` with `by_plural`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KindInfo:
    kind: str
    api_version: str  # "v1" or "apps/v1"
    group: str  # "" for the core group
    version: str
    plural: str
    short_names: tuple[str, ...]
    namespaced: bool = True

    @property
    def resource(self) -> str:
        """`pods`, `deployments.apps`: how Kubernetes names the resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """`Pod`, `Deployment.apps`: how Kubernetes names the kind in Invalid messages."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


def _info(kind: str, api_version: str, plural: str, *short: str) -> KindInfo:
    group, _, version = api_version.rpartition("/")
    return KindInfo(kind, api_version, group, version, plural, tuple(short), True)


KINDS: tuple[KindInfo, ...] = (
    _info("Pod", "v1", "pods", "po"),
    _info("ReplicationController", "v1", "replicationcontrollers", "rc"),
    _info("PersistentVolumeClaim", "v1", "persistentvolumeclaims", "pvc"),
    _info("Event", "v1", "events", "ev"),
    _info("ReplicaSet", "apps/v1", "replicasets", "rs"),
    _info("Deployment", "apps/v1", "deployments", "deploy"),
    _info("StatefulSet", "apps/v1", "statefulsets", "sts"),
    _info("ControllerRevision", "apps/v1", "controllerrevisions"),
    # Cluster-scoped; served by tinykube/api/namespaces.py.
    KindInfo("Namespace", "v1", "", "v1", "namespaces", ("ns",), namespaced=False),
)

# Kinds a user may submit (create/apply); the rest are written by tinykube itself.
USER_KINDS: frozenset[str] = frozenset(
    {"Pod", "ReplicationController", "PersistentVolumeClaim", "ReplicaSet", "Deployment",
     "StatefulSet"})

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


def by_api_version_kind(api_version: str, kind: str) -> KindInfo:
    """Manifest lookup: the kind must exist and belong to `api_version`."""
    info = _BY_KIND.get(kind)
    if info is None or info.api_version != api_version:
        version = api_version or '""'
        raise UnknownKind(f'no kind "{kind}" is registered for version "{version}"')
    return info


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
