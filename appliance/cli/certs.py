"""`appliancectl certs init`: a local CA, the server's certificate and client certificates for a
site without a PKI (or leaves made under the hospital's own CA), with `cryptography`."""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path
    subject: str


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def make_ca(out: Path, cn: str = "Appliance local CA", days: int = 3650) -> Issued:
    out.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    (out / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(out / "ca.key", key)
    return Issued(out / "ca.pem", out / "ca.key", cert.subject.rfc4514_string())


def issue(out: Path, stem: str, cn: str, ca_cert: Path, ca_key: Path, *, server: bool = False,
          names: tuple[str, ...] = (), days: int = 825, not_before: dt.datetime | None = None) -> Issued:
    """A leaf certificate signed by the CA: a server's (with DNS/IP names) or a client's."""
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    signer = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(start)
         .not_valid_after(start + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                               else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = b.sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    (out / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(out / f"{stem}.key", key)
    return Issued(out / f"{stem}.pem", out / f"{stem}.key", cert.subject.rfc4514_string())


def init_pki(out: Path, server_names: tuple[str, ...], clients: dict[str, str],
             ca_cert: Path | None = None, ca_key: Path | None = None) -> str:
    """CA (made here unless the hospital's is given), server and clients; returns the config lines."""
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    if ca_cert is None or ca_key is None:
        made = make_ca(out)
        ca_cert, ca_key = made.cert, made.key
    issue(out, "server", server_names[0], ca_cert, ca_key, server=True, names=server_names)
    lines = ["[grpc]", f'tls_cert_file = "{out / "server.pem"}"', f'tls_key_file = "{out / "server.key"}"',
             f'tls_client_ca_file = "{ca_cert}"', "", "[access]"]
    subjects = []
    for name, role in clients.items():
        leaf = issue(out, f"client-{name}", name, ca_cert, ca_key)
        subjects.append(f'"{leaf.subject}" = ["{role}"]')
    lines.append("tls_subjects = { " + ", ".join(subjects) + " }")
    return "\n".join(lines)
