"""A real etcd for tests and local clusters: Debian's `etcd` (etcd-server) on loopback, on
free ports, its data under a directory the caller owns, stopped by its pid.

`running_etcd(data_dir)` is a context manager yielding an `Etcd` (`endpoint`, `url`,
`store_flag`); the process is killed and waited for on exit, whatever happened. With
`tls=make_tls(directory)` it serves HTTPS only and requires client certificates (etcd's
`--client-cert-auth`), as a production etcd does.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .daemon import stop_process

START_SECONDS = 30.0


@dataclass(frozen=True)
class EtcdCerts:
    """A CA, etcd's serving certificate (127.0.0.1, localhost) and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


@dataclass
class Etcd:
    command: list[str]
    client_port: int
    data_dir: Path
    certs: EtcdCerts | None = None
    process: subprocess.Popen | None = None
    detached: bool = False  # outlives its starter (scripts/cluster up)

    def start(self) -> None:
        """Start etcd (again, on the same ports and data) and wait until it answers."""
        with open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL,
                                            start_new_session=self.detached)
        _wait_ready(self)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.certs else 'http'}://{self.endpoint}"

    @property
    def store_flag(self) -> str:
        return f"etcd://{self.endpoint}"

    def call(self, path: str, body: dict) -> dict:
        """One JSON gateway request (tests use it to compact or read etcd directly)."""
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        context = self.certs.client_context() if self.certs else None
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        stop_process(self.process)


def etcd_binary() -> str | None:
    return shutil.which("etcd")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def make_tls(directory: Path) -> EtcdCerts:
    """Write a throwaway CA and the certificates an etcd with client-cert auth needs."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = datetime.datetime.now(datetime.UTC)

    def issue(name: str, issuer_key, issuer_name, *, ca: bool = False, usage=None):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (x509.CertificateBuilder().subject_name(subject)
                   .issuer_name(issuer_name or subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ExtendedKeyUsageOID.SERVER_AUTH in (usage or []):
            import ipaddress

            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        cert = builder.sign(issuer_key or key, hashes.SHA256())
        cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_path.chmod(0o600)
        return cert, key, cert_path, key_path

    ca_cert, ca_key, ca_path, _ = issue("etcd-ca", None, None, ca=True)
    # etcd's JSON gateway dials etcd's own gRPC port with the serving certificate: it is a
    # client certificate too.
    _, _, server_cert, server_key = issue(
        "etcd-server", ca_key, ca_cert.subject,
        usage=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    _, _, client_cert, client_key = issue("etcd-client", ca_key, ca_cert.subject,
                                          usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
    return EtcdCerts(ca_path, server_cert, server_key, client_cert, client_key)


def etcd_for(data_dir: Path, name: str = "tk-etcd", tls: EtcdCerts | None = None,
             detached: bool = False) -> Etcd:
    """An etcd on free loopback ports over `data_dir`, not started yet."""
    binary = etcd_binary()
    if binary is None:
        raise RuntimeError("etcd is not installed (scripts/setup installs etcd-server)")
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    client_port, peer_port = _free_ports(2)
    scheme = "https" if tls else "http"
    client, peer = f"{scheme}://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    secure = [] if tls is None else [
        "--cert-file", str(tls.server_cert), "--key-file", str(tls.server_key),
        "--trusted-ca-file", str(tls.ca), "--client-cert-auth"]
    command = [binary, "--name", name, "--data-dir", str(data_dir),
               "--listen-client-urls", client, "--advertise-client-urls", client,
               "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
               "--initial-cluster", f"{name}={peer}", "--initial-cluster-state", "new",
               "--logger", "zap", "--log-level", "warn", *secure]
    return Etcd(command, client_port, data_dir, tls, detached=detached)


@contextlib.contextmanager
def running_etcd(data_dir: Path, name: str = "tk-etcd",
                 tls: EtcdCerts | None = None) -> Iterator[Etcd]:
    etcd = etcd_for(data_dir, name, tls)
    try:
        etcd.start()
        yield etcd
    finally:
        etcd.stop()


def _wait_ready(etcd: Etcd) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        if etcd.process is not None and etcd.process.poll() is not None:
            raise RuntimeError(f"etcd exited with {etcd.process.returncode} at start "
                               f"(log: {etcd.data_dir}.log)")
        try:
            etcd.call("/v3/kv/range", {"key": "AA=="})
            return
        except (OSError, ssl.SSLError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd did not answer within {START_SECONDS:.0f} s") from None
            time.sleep(0.05)
