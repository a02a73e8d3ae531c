"""Who holds the keys: what sealed each systemd credential (the TPM2 chip, the host key in
/var/lib/systemd/credential.secret, both), or a plain 0600 file. IT's audit asks, and the answer
decides what a stolen disk is worth: a TPM-sealed key does not decrypt on another machine.

The sealing mode is the first 16 bytes of a credential (a GUID systemd defines in
src/shared/creds-util.h); the file is base64 as `systemd-creds encrypt` writes it."""
from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

# systemd's CRED_AES256_GCM_BY_* identifiers, as bytes on disk.
_SEALS = {
    "5a1c6a86df9d4096b1d5a65e0862f19a": "host",
    "55b9ed1d38594d43a8319d2ebb332ac6": "host",  # scoped to a user
    "0c7cc07b117645919c4b0bea08bc20fe": "tpm2",
    "faf7eb9341e3412ca1a436f95a29362f": "tpm2",  # with a signed PCR policy
    "93a894094874449090caf2fc93cab553": "tpm2+host",
    "af4950a849134eb1a73846304ff30c05": "tpm2+host",
}
ENV = "APPLIANCE_KEY_CUSTODY"  # set by the package (a unit drop-in): the service cannot read /etc/appliance/credentials


def seal_of(cred: Path) -> str:
    """"tpm2", "host", "tpm2+host" or "unknown" for one .cred file."""
    raw = cred.read_bytes()
    try:
        data = base64.b64decode(b"".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        data = raw  # written with --pretty=no and no base64? take the bytes as they are
    return _SEALS.get(data[:16].hex(), "unknown")


def custody(cred_dir: Path, names: tuple[str, ...]) -> str:
    """One word for a set of keys: the weakest seal among them ("file" for a plain key file)."""
    order = ["unknown", "file", "host", "tpm2", "tpm2+host"]
    seals = []
    for name in names:
        cred = cred_dir / f"{name}.cred"
        seals.append(seal_of(cred) if cred.exists() else "file")
    return min(seals, key=order.index) if seals else "file"


def describe(word: str) -> str:
    return {"tpm2+host": "sealed to this machine's TPM2 chip and host key (systemd-creds)",
            "tpm2": "sealed to this machine's TPM2 chip (systemd-creds)",
            "host": "encrypted with the host key /var/lib/systemd/credential.secret (systemd-creds; no TPM2): "
                    "whoever copies the disk whole can decrypt them",
            "file": "plain 0600 key files: whoever can read them as root or copies the disk can decrypt",
            "unknown": "systemd credentials of a kind this version does not know"}.get(word, word)


def running_custody(key_source: str) -> str:
    """What the daemon reports: the package's word for its credentials, else the key's source."""
    return os.environ.get(ENV) or ("file" if key_source == "key file" else "unknown")


def main(argv: list[str] | None = None) -> int:
    """`python -m appliance.store.custody DIR`: the word for the keys in DIR (the package's
    postinst writes it into the unit's environment, which the sandboxed service can read)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    print(custody(Path(args[0]) if args else Path("/etc/appliance/credentials"), ("db.key", "deid.key", "audit.key")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
