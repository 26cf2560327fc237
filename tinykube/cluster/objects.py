"""The few object operations cluster parts need, whoever serves them.

The all-in-one daemon gives them its store (`StoreObjects`); an agent gives them the API
server over HTTPS (tinykube/cluster/apiclient.py). Node registration and heartbeats are written
once against this protocol.
"""

from __future__ import annotations

from typing import Any, Protocol

from tinykube.model.kinds import by_kind


class Objects(Protocol):
    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    async def update(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    async def update_status(self, obj: dict[str, Any]) -> dict[str, Any]: ...


def store_namespace(kind: str, namespace: str) -> str:
    """Cluster-scoped objects sit under the store's key namespace `default`."""
    return namespace if by_kind(kind).namespaced else "default"


class StoreObjects:
    """`Objects` straight on the daemon's store (the all-in-one shortcut)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.store.try_get(kind, store_namespace(kind, namespace), name)

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return await self.store.create(obj, durable=True)

    async def update(self, obj: dict[str, Any]) -> dict[str, Any]:
        return await self.store.update(obj, durable=True)

    async def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        return await self.store.update_status(obj, durable=True)
