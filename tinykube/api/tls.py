"""The TCP listener's credentials: a CA, a serving certificate and an admin bearer token.

Made on first start under `<root>/pki/` (every file 0600, the folder 0700) and kept across
restarts, so a kubeconfig handed out once stays valid. The serving certificate is remade
(signed by the same CA) when the listen address is no longer among its names. Certificates
come from the `cryptography` library; nothing shells out to openssl.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tinykube.runtime import layout

DEFAULT_LISTEN = "127.0.0.1:6443"
VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def bind(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str) -> Listen | None:
    """`HOST:PORT` (`[::1]:6443` for IPv6), or `none` for no TCP listener."""
    if text.strip().lower() == "none":
        return None
    host, sep, port_text = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"--listen: {text!r} is not HOST:PORT (or none)")
    return Listen(host, int(port_text))


@dataclass(frozen=True)
class Pki:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def token_file(self) -> Path:
        return self.directory / "admin.token"

    def token(self) -> str:
        return self.token_file.read_text().strip()

    @property
    def node_token_file(self) -> Path:
        return self.directory / "node.token"

    @property
    def kubelet_client_cert(self) -> Path:
        """The servers' client certificate towards the agents' log/exec endpoints (the
        kube-apiserver's --kubelet-client-certificate); agents trust the CA, not a token."""
        return self.directory / "kubelet-client.crt"

    @property
    def kubelet_client_key(self) -> Path:
        return self.directory / "kubelet-client.key"

    def node_tokens(self) -> list[str]:
        """The agents' join token (cluster mode, tinykube/cluster/server.py), if made."""
        try:
            return [self.node_token_file.read_text().strip()]
        except FileNotFoundError:
            return []


def ensure_pki(root: Path, listen: Listen) -> Pki:
    """Create what is missing under `<root>/pki/`; keep what is there (blocking: file I/O)."""
    pki = Pki(layout.pki_dir(root))
    pki.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(pki.directory, 0o700)
    if not (pki.ca_cert.exists() and pki.ca_key.exists()):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tinykube-ca")])
        cert = (_builder(name, name, key.public_key())
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True,
                    content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False),
                    critical=True)
                .sign(key, hashes.SHA256()))
        _write(pki.ca_key, _key_pem(key))
        _write(pki.ca_cert, cert.public_bytes(serialization.Encoding.PEM))
        pki.server_cert.unlink(missing_ok=True)  # signed by a CA that is gone
    if not _serving_cert_covers(pki, listen):
        _make_serving_cert(pki, listen)
    if not (pki.kubelet_client_cert.exists() and pki.kubelet_client_key.exists()):
        _make_kubelet_client_cert(pki)
    if not pki.token_file.exists() or not pki.token():
        _write(pki.token_file, secrets.token_urlsafe(32).encode() + b"\n")
    return pki


def _names(listen: Listen) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName("localhost"),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:
        address = ipaddress.ip_address(listen.host)
        if address.is_unspecified:  # 0.0.0.0 is reached as 127.0.0.1 here
            return names
        extra: x509.GeneralName = x509.IPAddress(address)
    except ValueError:
        extra = x509.DNSName(listen.host)
    return names if extra in names else names + [extra]


def _serving_cert_covers(pki: Pki, listen: Listen) -> bool:
    if not (pki.server_cert.exists() and pki.server_key.exists()):
        return False
    cert = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    remaining = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return all(name in san for name in _names(listen)) and remaining > datetime.timedelta(days=1)


def _make_serving_cert(pki: Pki, listen: Listen) -> None:
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tinykube-apiserver")])
    cert = (_builder(name, ca_cert.subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName(_names(listen)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    _write(pki.server_key, _key_pem(key))
    _write(pki.server_cert, cert.public_bytes(serialization.Encoding.PEM))


KUBELET_CLIENT_NAME = "tinykube-apiserver-kubelet-client"


def _make_kubelet_client_cert(pki: Pki) -> None:
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, KUBELET_CLIENT_NAME)])
    cert = (_builder(name, ca_cert.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    _write(pki.kubelet_client_key, _key_pem(key))
    _write(pki.kubelet_client_cert, cert.public_bytes(serialization.Encoding.PEM))


def ensure_self_signed(directory: Path, name: str, address: str | None) -> tuple[Path, Path]:
    """An agent's serving certificate for its log/exec endpoint: self-signed, as the
    kubelet's default one is (blocking: file I/O). Remade when `address` is not in it."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path, key_path = directory / "kubelet.crt", directory / "kubelet.key"
    names: list[x509.GeneralName] = [x509.DNSName(name)]
    if address:
        names.append(x509.IPAddress(ipaddress.ip_address(address)))
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            if all(n in san for n in names):
                return cert_path, key_path
        except x509.ExtensionNotFound:
            pass
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}-kubelet")])
    cert = (_builder(subject, subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    _write(key_path, _key_pem(key))
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY))


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes) -> None:
    """Write 0600 from the first byte, atomically (a crash leaves the old file or none)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
