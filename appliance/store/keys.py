"""Key sources. Secrets never live in the config file: a 0600 key file, or a systemd
credential (LoadCredential=) that the unit hands over in $CREDENTIALS_DIRECTORY."""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from ..errors import StoreKeyError


def describe(path: Path) -> str:
    return f"key file {path}"


def read_key(path: Path, what: str) -> bytes:
    """A 32-byte key written as 64 hex digits."""
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / path.name).exists():
        path = Path(cred_dir) / path.name
    try:
        st = path.stat()
    except FileNotFoundError:
        raise StoreKeyError(f"{what}: {describe(path)} not found; create it with `appliancectl init` "
                            "or restore it from the key backup") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise StoreKeyError(f"{what}: {describe(path)} is readable by group or others "
                            f"(mode {stat.S_IMODE(st.st_mode):o}); run `chmod 600 {path}`")
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise StoreKeyError(f"{what}: {describe(path)} must hold 64 hex digits (a 256-bit key)")
    return key


def write_new_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")


def replace_private(path: Path, text: str) -> None:
    """`path` holds `text`, mode 0600 from its first byte, replaced in one rename: a crash leaves
    the old content or the new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
