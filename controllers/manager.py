"""Starts every controller under one nursery.

`CONTROLLERS` is the whole list: a name and an `async run(store, *, task_status)` each. A
controller is added by appending one line. `run_all` starts them one by one with
`nursery.start`, so when it reports started every controller has its watches registered.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from . import deployment, endpointslice, gc, replicaset, statefulset

if TYPE_CHECKING:
    from tinykube.store import Store

Runner = Callable[..., Awaitable[None]]  # async run(store, *, task_status)

CONTROLLERS: list[tuple[str, Runner]] = [
    ("replicaset", functools.partial(replicaset.run, kind="ReplicaSet")),
    ("replicationcontroller", functools.partial(replicaset.run, kind="ReplicationController")),
    ("deployment", deployment.run),
    ("statefulset", statefulset.run),
    ("endpointslice", endpointslice.run),
    ("garbagecollector", gc.run),
]

log = logging.getLogger("tinykube.controllers")


async def run_all(store: Store, *,
                  task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    async with trio.open_nursery() as nursery:
        for name, runner in CONTROLLERS:
            await nursery.start(functools.partial(runner, store))
            log.debug("controller %s started", name)
        task_status.started()
