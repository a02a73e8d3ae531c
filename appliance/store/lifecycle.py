"""What happens to stored data over its life: retention purges, erasure on request, encrypted
backups and their restore, integrity checks. Every deletion runs under SQLCipher's
secure_delete (freed pages are zeroed), and freed pages are returned to the file system."""
from __future__ import annotations

from typing import Any

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import sqlcipher3

from ..errors import InvalidRequest, StoreKeyError
from .db import Store, now_ms

# Per document: the rows that hold its text or identifiers. raw_messages and dead letters are
# purged by their own age; patients once no document of theirs is left.
_DOCUMENT_TABLES = ("summaries", "surrogates", "jobs")


@dataclass(frozen=True)
class Purged:
    documents: int = 0
    raw_messages: int = 0
    dead_letters: int = 0
    patients: int = 0
    audit: int = 0

    def total(self) -> int:
        return self.documents + self.raw_messages + self.dead_letters + self.patients + self.audit

    def describe(self) -> str:
        return (f"documents={self.documents} raw_messages={self.raw_messages} dead_letters={self.dead_letters} "
                f"patients={self.patients} audit={self.audit}")


_TERMINAL = ("SUMMARIZED", "SUPERSEDED", "CANCELLED", "FAILED", "DEID_FAILED")


def purge(store: Store, *, days: int, audit_days: int, now: int | None = None, batch: int = 100,
          pause_s: float = 0.02, actor: str = "retention") -> Purged:
    """Delete what is older than `days` (0: every document whose summary is done, at once), in
    transactions of at most `batch` documents with a pause between them, so intake's commits
    interleave and are never held up for long. Audit rows older than `audit_days` go too."""
    now = now_ms() if now is None else now
    cutoff = now - days * 86_400_000
    docs = 0
    while True:
        if days == 0:
            marks = ",".join("?" * len(_TERMINAL))
            ids = [r[0] for r in store._query(f"SELECT id FROM documents WHERE status IN ({marks}) LIMIT ?",
                                              (*_TERMINAL, batch))]
        else:
            ids = [r[0] for r in store._query("SELECT id FROM documents WHERE received_ms < ? LIMIT ?",
                                              (cutoff, batch))]
        if not ids:
            break
        with store.transaction() as cur:
            docs += _delete_documents(cur, ids)
        time.sleep(pause_s)
    if days == 0:
        # Zero retention keeps the raw message only while its document is still in work.
        raw = _delete_in_batches(store, "DELETE FROM raw_messages WHERE rowid IN (SELECT r.rowid FROM raw_messages r "
                                 "LEFT JOIN documents d ON d.id = r.document_id WHERE d.id IS NULL LIMIT ?)",
                                 (), batch, pause_s)
    else:
        raw = _delete_in_batches(store, "DELETE FROM raw_messages WHERE rowid IN (SELECT rowid FROM raw_messages "
                                 "WHERE received_ms < ? LIMIT ?)", (cutoff,), batch, pause_s)
    dead = _delete_in_batches(store, "DELETE FROM dead_letters WHERE rowid IN (SELECT rowid FROM dead_letters "
                              "WHERE received_ms < ? LIMIT ?)", (cutoff,), batch, pause_s)
    with store.transaction() as cur:
        # A patient with no document left, last heard of before the cutoff: its identifiers go.
        cur.execute("DELETE FROM patients WHERE updated_ms < ? AND patient_ref NOT IN "
                    "(SELECT patient_ref FROM documents)", (cutoff,))
        patients = cur.rowcount
        cur.execute("DELETE FROM audit WHERE ts_ms < ?", (now - audit_days * 86_400_000,))
        audit = cur.rowcount
        result = Purged(docs, raw, dead, patients, audit)
        store._audit(cur, actor, "retention.purge", "-", f"days={days} {result.describe()}")
    reclaim(store)
    return result


def _delete_in_batches(store: Store, sql: str, args: tuple[Any, ...], batch: int, pause_s: float) -> int:
    """Run a `... LIMIT ?` delete until it deletes less than a batch; one transaction per batch."""
    total = 0
    while True:
        with store.transaction() as cur:
            cur.execute(sql, (*args, batch))
            n = cur.rowcount
        total += n
        if n < batch:
            return int(total)
        time.sleep(pause_s)


def _delete_documents(cur: sqlcipher3.Cursor, ids: list[str]) -> int:
    marks = ",".join("?" * len(ids))
    for table in _DOCUMENT_TABLES:
        cur.execute(f"DELETE FROM {table} WHERE document_id IN ({marks})", ids)
    cur.execute(f"DELETE FROM raw_messages WHERE document_id IN ({marks})", ids)
    cur.execute(f"DELETE FROM documents WHERE id IN ({marks})", ids)
    return int(cur.rowcount)


def reclaim(store: Store, pages: int = 1000) -> None:
    """Return freed pages to the file system (auto_vacuum=INCREMENTAL), a thousand pages at a
    time with the write lock let go in between, and fold the WAL back."""
    while True:
        with store._lock:
            if store._conn.execute("PRAGMA freelist_count").fetchone()[0] == 0:
                break
            store._conn.execute(f"PRAGMA incremental_vacuum({int(pages)})").fetchall()
        time.sleep(0.005)
    with store._lock:
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def patients_of(store: Store, patient_ref: str) -> list[str]:
    """The patient and every identity merged into it or it into (ADT^A40), transitively."""
    refs = {patient_ref}
    while True:
        marks = ",".join("?" * len(refs))
        rows = store._query(f"SELECT patient_ref, merged_into FROM patients WHERE patient_ref IN ({marks}) "
                            f"OR merged_into IN ({marks})", (*refs, *refs))
        grown = refs | {r[0] for r in rows} | {r[1] for r in rows if r[1]}
        if grown == refs:
            return sorted(refs)
        refs = grown


def erase_patient(store: Store, patient_ref: str, actor: str, dry_run: bool = False) -> dict[str, int]:
    """Every document, summary, raw message, surrogate map and identifier record of one patient
    (merged identities included); one audit row with the counts, never the identifiers.
    `dry_run`: the counts only, nothing erased (audited as a preview)."""
    refs = patients_of(store, patient_ref)
    marks = ",".join("?" * len(refs))
    ids = [r[0] for r in store._query(f"SELECT id FROM documents WHERE patient_ref IN ({marks})", tuple(refs))]
    counts = {"documents": 0, "patients": 0, "messages": 0}
    if dry_run:
        counts["documents"] = len(ids)
        counts["messages"] = store._query(f"SELECT count(*) FROM raw_messages WHERE patient_ref IN ({marks})",
                                          tuple(refs))[0][0]
        counts["patients"] = store._query(f"SELECT count(*) FROM patients WHERE patient_ref IN ({marks})",
                                          tuple(refs))[0][0]
        store.audit(actor, "patient.erase_preview", "-", f"documents={counts['documents']} "
                    f"messages={counts['messages']} identities={counts['patients']}")
        return counts
    with store.transaction() as cur:
        if ids:
            counts["documents"] = _delete_documents(cur, ids)
        cur.execute(f"DELETE FROM raw_messages WHERE patient_ref IN ({marks})", refs)  # ADT, merges
        counts["messages"] = cur.rowcount
        cur.execute(f"DELETE FROM patients WHERE patient_ref IN ({marks})", refs)
        counts["patients"] = cur.rowcount
        store._audit(cur, actor, "patient.erased", "-", f"documents={counts['documents']} "
                     f"messages={counts['messages']} identities={counts['patients']}")
    reclaim(store)
    return counts


def check(store: Store, *, full: bool = True) -> list[str]:
    """Problems found (empty: healthy). Full: SQLCipher's HMAC check of every page and SQLite's
    integrity_check; quick: quick_check only (what the daemon runs at start)."""
    problems: list[str] = []
    with store._rlock:
        if full:
            problems += [f"cipher: {r[0]}" for r in store._rconn.execute("PRAGMA cipher_integrity_check").fetchall()]
            rows = store._rconn.execute("PRAGMA integrity_check").fetchall()
        else:
            rows = store._rconn.execute("PRAGMA quick_check").fetchall()
    problems += [f"sqlite: {r[0]}" for r in rows if r[0] != "ok"]
    return problems


# The audit MAC key travels inside the backup (encrypted with it), so a store restored on a new
# machine still verifies its chain; restore moves it to the key file and drops the table.
_CARRIED_KEY = "backup_carried_audit_key"


def backup(store: Store, out: Path, actor: str = "backup") -> str:
    """A consistent, encrypted copy under a new random key, written while the daemon runs
    (sqlcipher_export from one read snapshot), then opened and checked. Returns the key (hex):
    it is shown once and kept by whoever holds the backup. `actor`: the person who asked."""
    if out.exists():
        raise InvalidRequest(f"{out} already exists; choose a new file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    tmp = out.with_name(out.name + ".partial")
    tmp.unlink(missing_ok=True)
    version = store._query("PRAGMA user_version")[0][0]
    with store._rlock:
        conn = store._rconn
        conn.execute(f"ATTACH DATABASE ? AS backup KEY \"x'{key}'\"", (str(tmp),))
        try:
            conn.execute("BEGIN")  # one snapshot for the whole export
            try:
                conn.execute("SELECT sqlcipher_export('backup')")
                conn.execute(f"PRAGMA backup.user_version = {int(version)}")
            finally:
                conn.execute("COMMIT")
        finally:
            conn.execute("DETACH DATABASE backup")
    os.chmod(tmp, 0o600)
    if store.audit_key is not None:
        _carry_audit_key(tmp, key, store.audit_key)
    documents = verify_backup(tmp, key)
    os.replace(tmp, out)
    store.audit(actor, "store.backup", out.name, f"documents={documents}")
    return key


def _carry_audit_key(path: Path, key_hex: str, audit_key: bytes) -> None:
    conn = sqlcipher3.connect(str(path), isolation_level=None)
    try:
        conn.execute(f"PRAGMA key = \"x'{key_hex}'\"")
        conn.execute(f"CREATE TABLE {_CARRIED_KEY} (key_hex TEXT NOT NULL)")
        conn.execute(f"INSERT INTO {_CARRIED_KEY} VALUES (?)", (audit_key.hex(),))
    finally:
        conn.close()


def carried_audit_key(path: Path, key_hex: str) -> bytes | None:
    """The audit key a backup carries (None from a backup made before it did)."""
    conn = sqlcipher3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA cipher_log_level = NONE")
        conn.execute(f"PRAGMA key = \"x'{key_hex}'\"")
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name=?", (_CARRIED_KEY,)).fetchone():
            return None
        row = conn.execute(f"SELECT key_hex FROM {_CARRIED_KEY}").fetchone()
        return bytes.fromhex(row[0]) if row else None
    finally:
        conn.close()


def verify_backup(path: Path, key_hex: str) -> int:
    """Open a backup with its key, check every page, count its documents."""
    conn = sqlcipher3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA cipher_log_level = NONE")
        conn.execute(f"PRAGMA key = \"x'{key_hex}'\"")
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlcipher3.DatabaseError:
            raise StoreKeyError(f"backup {path} cannot be opened with the key given: wrong key, or not an "
                                "appliance backup") from None
        bad = [r[0] for r in conn.execute("PRAGMA cipher_integrity_check").fetchall()]
        bad += [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall() if r[0] != "ok"]
        if bad:
            raise StoreKeyError(f"backup {path} fails its integrity check ({len(bad)} problems, first: {bad[0]}); "
                                "do not restore it")
        return int(conn.execute("SELECT count(*) FROM documents").fetchone()[0])
    finally:
        conn.close()


def restore(backup_file: Path, backup_key_hex: str, db_path: Path, db_key: bytes) -> int:
    """Replace the database with a backup (daemon stopped; the caller holds the state lock): the
    backup is checked first and nothing is replaced unless it passes, then re-encrypted under this
    installation's key (so a backup restores onto another machine), checked again, and moved into
    place in one rename. Returns the number of documents restored."""
    documents = verify_backup(backup_file, backup_key_hex)
    tmp = db_path.with_name(db_path.name + ".restoring")
    tmp.unlink(missing_ok=True)
    conn = sqlcipher3.connect(str(backup_file), isolation_level=None)
    try:
        conn.execute("PRAGMA cipher_log_level = NONE")
        conn.execute(f"PRAGMA key = \"x'{backup_key_hex}'\"")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute(f"ATTACH DATABASE ? AS target KEY \"x'{db_key.hex()}'\"", (str(tmp),))
        conn.execute("SELECT sqlcipher_export('target')")
        conn.execute(f"PRAGMA target.user_version = {int(version)}")
        conn.execute(f"DROP TABLE IF EXISTS target.{_CARRIED_KEY}")  # the key goes to its file, not the store
        conn.execute("DETACH DATABASE target")
    finally:
        conn.close()
    os.chmod(tmp, 0o600)
    if verify_backup(tmp, db_key.hex()) != documents:
        tmp.unlink(missing_ok=True)
        raise StoreKeyError("the restored copy does not hold the backup's documents; nothing was replaced")
    for suffix in ("-wal", "-shm", ".audit-head"):  # the old store's head anchors nothing now
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    os.replace(tmp, db_path)
    return documents
