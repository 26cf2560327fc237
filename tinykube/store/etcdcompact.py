"""Compacting etcd's history, as kube-apiserver does (apiserver/pkg/storage/etcd3/compact.go).

etcd keeps every revision until it is compacted; without compaction its database grows with
every status write until etcd refuses writes ("database space exceeded"). Every `interval`
each server tries to record the current revision under `compact_rev_key` by a transaction
comparing the key's version with the one it last saw: one server wins per round (the others
learn the version and stay quiet), and the winner compacts to the revision recorded a round
earlier. So at least one interval of history is always kept, for watches that lag (the cache
of a server that falls further behind lists again; a client's watch gets 410 Gone).
"""

from __future__ import annotations

import logging

import trio

from .etcdclient import EtcdClient, b64, revision
from .location import StoreUnavailable

log = logging.getLogger("tinykube.store.etcd")

COMPACT_KEY = b"compact_rev_key"  # kube-apiserver's: servers of both kinds can share an etcd


async def compact_forever(client: EtcdClient, interval: float) -> None:
    version, recorded = 0, 0
    while True:
        await trio.sleep(interval)
        try:
            version, recorded = await compact_once(client, version, recorded)
        except StoreUnavailable as e:  # etcd away: try again next round
            log.warning("etcd compaction skipped this round: %s", e)


async def compact_once(client: EtcdClient, version: int, recorded: int) -> tuple[int, int]:
    """One round: (the key's version now, the revision recorded for the next round)."""
    key = b64(COMPACT_KEY)
    response = await client.txn(
        [{"key": key, "target": "VERSION", "result": "EQUAL", "version": version}],
        [{"request_put": {"key": key, "value": b64(str(recorded))}}],
        [{"request_range": {"key": key}}])
    current = revision(response)
    if not response.get("succeeded"):  # another server did this round
        kvs = response["responses"][0]["response_range"].get("kvs") or [{}]
        return int(kvs[0].get("version", 0)), current
    if recorded:
        await client.compact(recorded)
        log.info("etcd compacted to revision %d", recorded)
    return version + 1, current
