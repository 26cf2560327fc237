"""Waiting helpers for controller tests that run against a real Store (no daemon)."""

import trio


async def eventually(check, timeout=10.0, what="condition"):
    """Poll `check` on the trio clock until it returns something truthy; return that."""
    with trio.move_on_after(timeout):
        while True:
            result = check()
            if result:
                return result
            await trio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def settled(store, seconds=0.3):
    """Wait until the store has seen no write for `seconds` (controllers are idle)."""
    last = -1
    while store.resource_version != last:
        last = store.resource_version
        await trio.sleep(seconds)


async def modify(store, kind, name, change, namespace="default"):
    """A client's read-change-write of one object, again on a Conflict (client-go's
    RetryOnConflict): on etcd a controller's write can land between the read and the write."""
    from tinykube.model.errors import Conflict

    while True:
        obj = store.get(kind, namespace, name)
        change(obj)
        try:
            return await store.update(obj)
        except Conflict:
            continue
