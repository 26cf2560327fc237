"""IP address management for pods: one address per pod uid out of one IPv4 CIDR.

The gateway is the CIDR's first host address (it sits on the bridge); the network and
broadcast addresses are never handed out. Allocations live in memory and on disk
(`ipamlog.py`: a snapshot plus an append-only journal, one line per change), written before
the change is made in memory: a change whose write failed never happened. There is no
fsync: it cost ~12 ms of every pod start, and what it would protect against, a power cut,
also takes every veth and pod with it.
The caller records an allocation here *before* it creates any link (record first, then act):
after a crash the files name every address that may be in use, and the start-up sweep can
release what no live pod owns.

Addresses are handed out next-fit (after the last one given, wrapping around), as CNI's
host-local plugin does, so a just-released address is not reused at once while stale ARP
entries or connections may still point at it.

Thread-safe: one lock guards the state and the file write, so concurrent allocations can
never hand out the same address.
"""

from __future__ import annotations

import ipaddress
import threading
from pathlib import Path

from . import ipamlog
from .errors import AddressPoolExhausted, NetworkConfigError

DEFAULT_CIDR = "10.88.0.0/16"
FILE_NAME = ipamlog.SNAPSHOT_NAME


class Ipam:
    """Allocations of `cidr` persisted in `state_dir` (ipam.json + ipam.journal, loaded if
    present)."""

    def __init__(self, state_dir: Path, cidr: str = DEFAULT_CIDR) -> None:
        try:
            network = ipaddress.IPv4Network(cidr, strict=True)
        except ValueError as exc:
            raise NetworkConfigError(f"cidr {cidr!r}: {exc}") from exc
        if network.prefixlen > 30:
            raise NetworkConfigError(
                f"cidr {cidr!r}: prefix /{network.prefixlen} leaves no room for a gateway "
                "and pods (need /30 or wider)"
            )
        self.network = network
        self.path = Path(state_dir) / FILE_NAME
        self._log = ipamlog.AllocationLog(Path(state_dir))
        self._lock = threading.Lock()
        self._by_uid: dict[str, str] = {}
        # The addresses in `_by_uid` as integers: next-fit looks here instead of parsing
        # every allocation on each call (O(pods) per allocation, ~1.5 ms at 500 pods).
        self._taken: set[int] = set()
        self._last: int | None = None  # integer value of the address handed out last
        self._load()

    @property
    def gateway(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def prefixlen(self) -> int:
        return self.network.prefixlen

    def allocations(self) -> dict[str, str]:
        """A copy of {pod uid: ip}."""
        with self._lock:
            return dict(self._by_uid)

    def lookup(self, pod_uid: str) -> str | None:
        with self._lock:
            return self._by_uid.get(pod_uid)

    def allocate(self, pod_uid: str) -> str:
        """The address of `pod_uid`, allocating (and persisting) one if it has none yet."""
        if not pod_uid:
            raise ValueError("pod_uid: must not be empty")
        with self._lock:
            existing = self._by_uid.get(pod_uid)
            if existing is not None:
                return existing
            ip = self._next_free()
            self._persist(ipamlog.allocated(pod_uid, ip))  # not persisted: not allocated
            self._by_uid[pod_uid] = ip
            self._last = int(ipaddress.IPv4Address(ip))
            self._taken.add(self._last)
            return ip

    def rename(self, old_uid: str, new_uid: str) -> str:
        """Move `old_uid`'s address to `new_uid` (a warm sandbox's to the pod that takes it),
        persisted in one write; KeyError if `old_uid` has none, ValueError if `new_uid`
        already has one."""
        with self._lock:
            if new_uid in self._by_uid:
                raise ValueError(f"pod_uid {new_uid!r}: already has {self._by_uid[new_uid]}")
            ip = self._by_uid[old_uid]
            self._persist(ipamlog.renamed(old_uid, new_uid))
            del self._by_uid[old_uid]
            self._by_uid[new_uid] = ip
            return ip

    def release(self, pod_uid: str) -> str | None:
        """Forget the address of `pod_uid`; returns it, or None if it had none (idempotent)."""
        with self._lock:
            ip = self._by_uid.get(pod_uid)
            if ip is not None:
                self._persist(ipamlog.released(pod_uid))
                del self._by_uid[pod_uid]
                self._taken.discard(int(ipaddress.IPv4Address(ip)))
            return ip

    def remove_file(self) -> None:
        """Forget every allocation and delete the files (for a full reset)."""
        with self._lock:
            self._by_uid.clear()
            self._taken.clear()
            self._last = None
            self._log.remove()

    # -- internals -------------------------------------------------------------------------

    def _next_free(self) -> str:
        first = int(self.network.network_address) + 2  # +1 is the gateway
        last = int(self.network.broadcast_address) - 1
        size = last - first + 1
        taken = self._taken
        start = first if self._last is None or not first <= self._last < last else self._last + 1
        for step in range(size):
            candidate = first + (start - first + step) % size
            if candidate not in taken:
                return str(ipaddress.IPv4Address(candidate))
        raise AddressPoolExhausted(f"cidr {self.network}: all {size} pod addresses are allocated")

    def _load(self) -> None:
        try:
            state = self._log.load()
        except ipamlog.UnreadableState as exc:
            raise NetworkConfigError(str(exc)) from exc
        if state.cidr is not None and state.cidr != str(self.network):
            raise NetworkConfigError(
                f"{self.path}: allocations are for cidr {state.cidr}, not {self.network}; "
                "reset the pod network before changing the cidr"
            )
        holders: dict[str, str] = {}
        for uid, ip in state.by_uid.items():
            try:
                inside = ipaddress.IPv4Address(ip) in self.network
            except ValueError:
                inside = False
            if not inside:
                raise NetworkConfigError(f"{self.path}: {uid} has {ip}, outside {self.network}")
            if ip in holders:  # never hand on a table that gives one address to two pods
                raise NetworkConfigError(f"{self.path}: {ip} is held by both {holders[ip]} "
                                         f"and {uid}")
            holders[ip] = uid
        self._by_uid = state.by_uid
        self._taken = {int(ipaddress.IPv4Address(ip)) for ip in holders}
        self._last = int(ipaddress.IPv4Address(state.last)) if state.last else None

    def _persist(self, line: str) -> None:
        """Write one change to disk (the table in memory is still the one before it)."""
        last = str(ipaddress.IPv4Address(self._last)) if self._last is not None else None
        self._log.append(line, self._by_uid, last, str(self.network))
