"""Database key rotation, offline: the whole database is exported into a new file under a new
random key (fresh salt, no page left under the old key), checked, then swapped in.

Order matters for a crash in the middle: the new key is written first (KEY.new), then the new
database replaces the old, then KEY.new replaces KEY. Whatever step a crash interrupts, one of
KEY and KEY.new opens the database, and the daemon's error says so."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


from ..errors import StoreKeyError
from .db import _connect, open_store
from .keys import read_key, write_new_key


def pending_key(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + ".new")


def rotate_key(db_path: Path, key_file: Path, actor: str = "appliancectl", audit_key_file: Path | None = None,
               persist_new: Callable[[Path], None] | None = None,
               swapped: Callable[[], None] | None = None) -> int:
    """Re-encrypt `db_path` under a new key written to `key_file`. Returns the documents kept.
    Where the key lives elsewhere too (an encrypted credential), `persist_new(KEY.new)` stores the
    new key there before the database is swapped, and `swapped()` makes it the current one after."""
    store = open_store(db_path, key_file)  # proves the current key, applies migrations
    before = store.count_documents()
    store.close()  # checkpoints the WAL into the file
    new_key_file = pending_key(key_file)
    if new_key_file.exists():
        new_key_file.unlink()  # a rotation that failed before the swap: its key encrypts nothing
    write_new_key(new_key_file)
    if persist_new is not None:
        persist_new(new_key_file)
    new_key = read_key(new_key_file, "new store key")
    tmp = db_path.with_name(db_path.name + ".rekey")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    conn = _connect(db_path, read_key(key_file, "store"), key_file)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute(f"ATTACH DATABASE ? AS rekeyed KEY \"x'{new_key.hex()}'\"", (str(tmp),))
        conn.execute("SELECT sqlcipher_export('rekeyed')")
        version = conn.execute("PRAGMA main.user_version").fetchone()[0]
        conn.execute(f"PRAGMA rekeyed.user_version = {int(version)}")
        conn.execute("DETACH DATABASE rekeyed")
    finally:
        conn.close()
    check = _connect(tmp, new_key, new_key_file)
    try:
        ok = check.execute("PRAGMA integrity_check").fetchone()[0]
        after = check.execute("SELECT count(*) FROM documents").fetchone()[0]
        check.execute("PRAGMA journal_mode=DELETE")
    finally:
        check.close()
    if ok != "ok" or after != before:
        tmp.unlink(missing_ok=True)
        new_key_file.unlink(missing_ok=True)
        raise StoreKeyError(f"store: the re-encrypted copy failed its check ({ok}, {after} of {before} "
                            "documents); nothing was changed")
    for side in (Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        side.unlink(missing_ok=True)
    os.replace(tmp, db_path)
    _fsync_dir(db_path.parent)
    os.replace(new_key_file, key_file)
    _fsync_dir(key_file.parent)
    if swapped is not None:
        swapped()
    store = open_store(db_path, key_file, audit_key_file)  # the rotation's row is keyed like the rest
    try:
        with store.transaction() as cur:
            store._audit(cur, actor, "store.key_rotated", "", f"documents={after}")
    finally:
        store.close()
    return int(after)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["pending_key", "rotate_key"]
