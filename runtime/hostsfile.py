"""A pod's /etc/hosts, /etc/hostname and /etc/resolv.conf.

The files live in the pod dir and are bind-mounted over the host's in each container's
private mount namespace. Because they are bind mounts of *files*, an update must rewrite the
same inode (truncate + write): a rename would leave the containers looking at the old inode.

Pods that share `spec.subdomain` in a namespace see each other by name, as a Kubernetes
headless service gives StatefulSet pods: `<ip> web-0.<subdomain>.<ns>.svc.cluster.local
web-0.<subdomain> web-0`. With cluster DNS these entries stay, as a fallback: the DNS server
lives in the daemon, and pods keep running (and resolving their peers) while it restarts;
they also keep StatefulSets without a governing Service working as before. DNS is what
follows readiness: the hosts file names every peer with an address.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import safepath

_HEADER = """# Kubernetes-managed hosts file (tinykube).
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
fe00::0\tip6-mcastprefix
fe00::1\tip6-allnodes
fe00::2\tip6-allrouters
"""

# Without cluster DNS, no nameserver: nothing in a pod is to leave the machine.
RESOLV_CONF = "# tinykube: pods have no DNS server\noptions ndots:5\n"
CLUSTER_DOMAIN = "cluster.local"


def resolv_conf(namespace: str, nameserver: str | None) -> str:
    """A pod's /etc/resolv.conf as the kubelet writes it for dnsPolicy ClusterFirst: the
    cluster DNS server, Kubernetes' search list and ndots:5 (so `nginx` and `web-0.nginx`
    are tried as cluster names first). None: no DNS server."""
    if not nameserver:
        return RESOLV_CONF
    return (f"search {namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\n"
            f"nameserver {nameserver}\n"
            "options ndots:5\n")


@dataclass(frozen=True)
class HostEntry:
    ip: str
    hostname: str
    subdomain: str | None = None
    namespace: str = "default"

    def names(self) -> list[str]:
        if not self.subdomain:
            return [self.hostname]
        return [f"{self.hostname}.{self.subdomain}.{self.namespace}.svc.cluster.local",
                f"{self.hostname}.{self.subdomain}", self.hostname]


def render_hosts(own: HostEntry | None, peers: list[HostEntry] | None = None) -> str:
    """The hosts file: localhost lines, the pod itself, then its subdomain peers by name."""
    lines = [_HEADER]
    seen: set[str] = set()
    for entry in ([own] if own else []) + sorted(peers or [], key=lambda e: e.hostname):
        if entry.hostname in seen:
            continue
        seen.add(entry.hostname)
        lines.append(f"{entry.ip}\t" + "\t".join(entry.names()) + "\n")
    return "".join(lines)


HOSTNAME_MAX = 63  # a DNS label; sethostname(2) allows 64 bytes, the kubelet cuts at 63


def pod_hostname(pod: dict) -> str:
    """spec.hostname, else the pod name cut to 63 characters with trailing '-' and '.'
    removed, as the kubelet does (a pod name may be 253 characters long)."""
    spec = pod.get("spec") or {}
    name = spec.get("hostname") or pod["metadata"]["name"]
    if len(name) > HOSTNAME_MAX:
        name = name[:HOSTNAME_MAX].rstrip("-.")
    return name


def write_in_place(path: Path, text: str) -> bool:
    """Rewrite `path` keeping its inode (bind mounts follow it). False if already equal.
    A symlink in its place is refused, never written through (runtime/safepath.py)."""
    return safepath.write_in_place(path, text.encode())


def write_pod_files(pod_dir: Path, own: HostEntry | None, peers: list[HostEntry],
                    hostname: str, resolv: str = RESOLV_CONF) -> dict[str, Path]:
    """Write the three files; returns {container path: host file} for the bind mounts."""
    files = {"/etc/hosts": pod_dir / "etc-hosts",
             "/etc/hostname": pod_dir / "etc-hostname",
             "/etc/resolv.conf": pod_dir / "etc-resolv.conf"}
    write_in_place(files["/etc/hosts"], render_hosts(own, peers))
    write_in_place(files["/etc/hostname"], hostname + "\n")
    write_in_place(files["/etc/resolv.conf"], resolv)
    return files
