"""The package's keys are encrypted systemd credentials (/etc/appliance/credentials/NAME.cred,
`systemd-creds encrypt`, TPM2 or the host key), which systemd decrypts for the service alone.
Key rotation needs them in the clear for a moment: decrypted into a private directory on tmpfs
(/run), never on a disk, and removed when the rotation ends."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import StoreKeyError

CRED_DIR = Path("/etc/appliance/credentials")


def cred_path(cred_dir: Path, name: str) -> Path:
    return cred_dir / f"{name}.cred"


def _creds(*args: str) -> None:
    tool = shutil.which("systemd-creds")
    if tool is None:
        raise StoreKeyError("systemd-creds is not installed; it is needed to read and write the encrypted keys")
    r = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)  # noqa: S603 (our own arguments)
    if r.returncode != 0:  # its message names the file and the reason (no TPM, not root); it holds no key
        raise StoreKeyError(f"systemd-creds {args[0]} failed: {r.stderr.strip()[-300:]}; run as root")


def decrypt(cred: Path, name: str, out: Path) -> None:
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    _creds("decrypt", f"--name={name}", str(cred), str(out))
    os.chmod(out, 0o600)


def encrypt(src: Path, name: str, cred: Path) -> None:
    """Written beside `cred` and renamed over it: a crash leaves the old or the new, never half."""
    tmp = cred.with_name(cred.name + ".tmp")
    tmp.unlink(missing_ok=True)
    _creds("encrypt", f"--name={name}", str(src), str(tmp))
    os.chmod(tmp, 0o600)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, cred)


@contextmanager
def clear_keys(cred_dir: Path, names: tuple[str, ...]) -> Iterator[Path]:
    """A 0700 directory on tmpfs holding NAME (64 hex digits) for each NAME.cred in `cred_dir`."""
    base = Path("/run") if os.access("/run", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="appliance-keys.", dir=base) as tmp:
        out = Path(tmp)
        for name in names:
            if cred_path(cred_dir, name).exists():
                decrypt(cred_path(cred_dir, name), name, out / name)
        yield out
