"""Key escrow: the installation's keys wrapped for an offline recovery key, so a database copied
off a machine whose TPM died (or whose disk was moved) can still be opened by whoever holds that
key, and by no one else.

The format is the usual hybrid: a fresh AES-256-GCM key encrypts the keys (JSON), RSA-OAEP
(SHA-256) wraps that AES key for the recovery certificate's public key. The recovery private key
never touches the appliance: it is made on, and kept with, an offline machine or a safe."""
from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import StoreKeyError

FORMAT = "appliance-key-escrow/1"
NAMES = ("db.key", "deid.key", "audit.key")
_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


@dataclass(frozen=True)
class Escrow:
    keys: dict[str, str]  # name -> 64 hex digits
    host: str
    created_unix: int


def _public_key(path: Path) -> rsa.RSAPublicKey:
    data = path.read_bytes()
    try:
        key = x509.load_pem_x509_certificate(data).public_key() if b"CERTIFICATE" in data \
            else serialization.load_pem_public_key(data)
    except ValueError as e:
        raise StoreKeyError(f"{path} is not a PEM certificate or public key: {e}") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 3072:
        raise StoreKeyError(f"{path}: the recovery key must be RSA of 3072 bits or more "
                            "(make one with `appliancectl escrow keygen`)")
    return key


def keygen(out_dir: Path) -> tuple[Path, Path]:
    """A recovery key pair: recovery.key (private, 0600: take it off this machine) and
    recovery.pub.pem (public: what `escrow export` needs)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    private, public = out_dir / "recovery.key", out_dir / "recovery.pub.pem"
    key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def wrap(keys: dict[str, bytes], recipient: Path, host: str) -> bytes:
    """The escrow file's bytes (JSON): nothing in it is readable without the recovery key."""
    body = json.dumps({"keys": {n: k.hex() for n, k in keys.items()}, "host": host,
                       "created_unix": int(time.time())}).encode()
    aes = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    sealed = AESGCM(aes).encrypt(nonce, body, FORMAT.encode())
    wrapped = _public_key(recipient).encrypt(aes, _OAEP)

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return json.dumps({"format": FORMAT, "wrapped_key": b64(wrapped), "nonce": b64(nonce),
                       "ciphertext": b64(sealed), "host": host}, indent=1).encode() + b"\n"


def unwrap(data: bytes, private_key: Path) -> Escrow:
    try:
        doc = json.loads(data)
        if doc.get("format") != FORMAT:
            raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT!r}")
        wrapped, nonce, sealed = (base64.b64decode(doc[k]) for k in ("wrapped_key", "nonce", "ciphertext"))
    except (ValueError, KeyError, TypeError) as e:
        raise StoreKeyError(f"not an appliance key escrow file: {e}") from None
    try:
        key = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise StoreKeyError(f"{private_key} is not an unencrypted PEM private key: {e}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise StoreKeyError(f"{private_key} is not an RSA private key")
    try:
        aes = key.decrypt(wrapped, _OAEP)
        body = json.loads(AESGCM(aes).decrypt(nonce, sealed, FORMAT.encode()))
    except (ValueError, InvalidTag):
        raise StoreKeyError(f"{private_key} does not open this escrow file (another recovery key, or the file "
                            "was altered)") from None
    return Escrow(keys=dict(body["keys"]), host=str(body.get("host", "")), created_unix=int(body["created_unix"]))
