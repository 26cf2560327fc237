"""IP address management for pods: one address per pod uid out of one IPv4 CIDR.

The gateway is the CIDR's first host address (it sits on the bridge); the network and
broadcast addresses are never handed out. Allocations live in memory and in a JSON file
(`ipam.json` in the state dir) that is rewritten atomically on every change (temp file,
rename), so a crashed daemon leaves either the old or the new file. There is no fsync: it
cost ~12 ms of every pod start, and what it would protect against, a power cut, also takes
every veth and pod with it; a file that a power cut left empty therefore reads as "nothing
allocated".
The caller records an allocation here *before* it creates any link (record first, then act):
after a crash the file names every address that may be in use, and the start-up sweep can
release what no live pod owns.

Addresses are handed out next-fit (after the last one given, wrapping around), as CNI's
host-local plugin does, so a just-released address is not reused at once while stale ARP
entries or connections may still point at it.

Thread-safe: one lock guards the state and the file write, so concurrent allocations can
never hand out the same address.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
from pathlib import Path

from .errors import AddressPoolExhausted, NetworkConfigError

DEFAULT_CIDR = "10.88.0.0/16"
FILE_NAME = "ipam.json"


class Ipam:
    """Allocations of `cidr` persisted in `state_dir/ipam.json` (loaded if present)."""

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
        self._lock = threading.Lock()
        self._by_uid: dict[str, str] = {}
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
            self._by_uid[pod_uid] = ip
            self._last = int(ipaddress.IPv4Address(ip))
            try:
                self._save()
            except BaseException:
                # Not persisted means not allocated: keep memory and file in step.
                del self._by_uid[pod_uid]
                raise
            return ip

    def rename(self, old_uid: str, new_uid: str) -> str:
        """Move `old_uid`'s address to `new_uid` (a warm sandbox's to the pod that takes it),
        persisted in one write; KeyError if `old_uid` has none, ValueError if `new_uid`
        already has one."""
        with self._lock:
            if new_uid in self._by_uid:
                raise ValueError(f"pod_uid {new_uid!r}: already has {self._by_uid[new_uid]}")
            ip = self._by_uid.pop(old_uid)
            self._by_uid[new_uid] = ip
            try:
                self._save()
            except BaseException:
                del self._by_uid[new_uid]
                self._by_uid[old_uid] = ip
                raise
            return ip

    def release(self, pod_uid: str) -> str | None:
        """Forget the address of `pod_uid`; returns it, or None if it had none (idempotent)."""
        with self._lock:
            ip = self._by_uid.pop(pod_uid, None)
            if ip is not None:
                try:
                    self._save()
                except BaseException:
                    self._by_uid[pod_uid] = ip
                    raise
            return ip

    def remove_file(self) -> None:
        """Forget every allocation and delete the file (for a full reset)."""
        with self._lock:
            self._by_uid.clear()
            self._last = None
            self.path.unlink(missing_ok=True)

    # -- internals -------------------------------------------------------------------------

    def _next_free(self) -> str:
        first = int(self.network.network_address) + 2  # +1 is the gateway
        last = int(self.network.broadcast_address) - 1
        size = last - first + 1
        taken = {int(ipaddress.IPv4Address(ip)) for ip in self._by_uid.values()}
        start = first if self._last is None or not first <= self._last < last else self._last + 1
        for step in range(size):
            candidate = first + (start - first + step) % size
            if candidate not in taken:
                return str(ipaddress.IPv4Address(candidate))
        raise AddressPoolExhausted(f"cidr {self.network}: all {size} pod addresses are allocated")

    def _load(self) -> None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return
        if not text.strip():
            return  # only a power cut leaves it empty, and then no pod link survived either
        try:
            data = json.loads(text)
            cidr = data["cidr"]
            by_uid = data["allocations"]
            last = data.get("last")
            if not isinstance(by_uid, dict):
                raise TypeError("allocations is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise NetworkConfigError(f"{self.path}: unreadable IPAM state ({exc})") from exc
        if cidr != str(self.network):
            raise NetworkConfigError(
                f"{self.path}: allocations are for cidr {cidr}, not {self.network}; "
                "reset the pod network before changing the cidr"
            )
        for uid, ip in by_uid.items():
            if ipaddress.IPv4Address(ip) not in self.network:
                raise NetworkConfigError(f"{self.path}: {uid} has {ip}, outside {self.network}")
        self._by_uid = {str(uid): str(ip) for uid, ip in by_uid.items()}
        self._last = int(ipaddress.IPv4Address(last)) if last else None

    def _save(self) -> None:
        data = {
            "cidr": str(self.network),
            "allocations": self._by_uid,
            "last": str(ipaddress.IPv4Address(self._last)) if self._last is not None else None,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{FILE_NAME}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(json.dumps(data, sort_keys=True).encode())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
