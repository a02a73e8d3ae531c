"""SQLCipher store. One connection guarded by a lock: SQLite serialises writers anyway,
and one connection keeps the key and page cache in one place.

Every public write is one transaction; callers acknowledge only after it returns."""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from collections.abc import Callable

import sqlcipher3

from ..domain import KnownIdentifiers, PersonName
from ..errors import QueueFull, NotFound, StoreKeyError
from .faults import fault_reason
from .keys import describe, read_key, replace_private
from .schema import MIGRATIONS


T = TypeVar("T")


# The versions a new document replaces: the parent named by the replacement (TXA-13), or an
# earlier version sent under the same unique document number (TXA-12), not yet superseded.
CURRENT_VERSIONS = ("SELECT id FROM documents WHERE patient_ref=? AND document_ref IN (?, ?) AND id<>? "
                    "AND superseded_by IS NULL")


log = logging.getLogger(__name__)

# Summary job priorities: a clinician's request 10, a correction or final that replaced an earlier
# result 5 (whoever read the old summary needs the new one first), an arrival 0.
REPLACEMENT_PRIORITY = 5


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class DocumentRow:
    id: str
    kind: str
    source: str
    transport: str
    status: str
    patient_ref: str
    deid_text: str
    phi_spans: int
    document_ref: str
    superseded_by: str | None
    received_ms: int
    result_status: str = ""
    exam: str = ""
    modality: str = ""
    order_priority: str = ""
    patient_surrogate: str = ""
    critical: int = 0


@dataclass(frozen=True)
class SummaryRow:
    document_id: str
    text: str
    model: str
    tokens: int
    leaks_redacted: int
    created_ms: int
    unsupported_numbers: tuple[str, ...] = ()  # figures the report does not state
    structured: str = "{}"  # JSON: impression, findings with spans, follow-up, prompt version, model
    flags: tuple[str, ...] = ()  # grounding flags: a number, unit, side or negation the report does not state


@dataclass(frozen=True)
class DeadLetterRow:
    id: str
    transport: str
    reason: str
    raw: bytes
    received_ms: int
    resolved_ms: int | None


@dataclass(frozen=True)
class NewDocument:
    kind: str
    source: str
    transport: str
    patient_ref: str
    deid_text: str | None  # None: de-identify later (status PARSED)
    phi_spans: int
    document_ref: str
    surrogates: dict[str, str]
    raw: bytes
    message_key: str
    known: KnownIdentifiers
    priority: int = 0
    replaces_ref: str = ""
    original_text: str = ""  # kept (encrypted) only while deid_text is None
    result_status: str = ""
    # Worklist columns, de-identified before they are stored: the exam as ordered, modality,
    # priority, and the patient's surrogate name (the one the report's text uses).
    exam: str = ""
    modality: str = ""
    order_priority: str = ""
    patient_surrogate: str = ""


# A feed re-sends a patient's identifiers with every ADT update and result; the row is rewritten
# only when they add something, or to refresh when the patient was last heard of (retention counts
# in days) at most this often: one page less per message committed (measured, bench/hl7_intake_ab.py).
PATIENT_TOUCH_MS = 3_600_000


def known_to_json(k: KnownIdentifiers) -> str:
    # Hand-built rather than dataclasses.asdict: this runs on the ACK path of every ADT.
    d = {f: getattr(k, f) for f in ("patient_key", "record_numbers", "dates", "addresses", "postal_codes",
                                    "phones", "emails", "birth_date")}
    d["patient_names"] = [n.__dict__ for n in k.patient_names]
    d["other_names"] = [n.__dict__ for n in k.other_names]
    return json.dumps(d, sort_keys=True)


def known_from_json(s: str) -> KnownIdentifiers:
    d = json.loads(s)
    for f in ("patient_names", "other_names"):
        d[f] = tuple(PersonName(**n) for n in d[f])
    for f in ("record_numbers", "dates", "addresses", "postal_codes", "phones", "emails"):
        d[f] = tuple(d[f])
    return KnownIdentifiers(**d)


class Store:
    """`_conn` writes (one transaction at a time, group commits); `_rconn` reads, so readers
    never wait behind a commit's fsync (WAL lets them see the last committed state)."""

    def __init__(self, conn: sqlcipher3.Connection, rconn: sqlcipher3.Connection, path: Path) -> None:
        self._conn = conn
        self._rconn = rconn
        self._lock = threading.RLock()
        self._rlock = threading.Lock()
        self.path = path

    # -- plumbing -------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlcipher3.Cursor]:
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                self._conn.rollback()
                raise
            try:
                self._conn.commit()
            except BaseException:
                # A COMMIT that fails (disk full, I/O error) leaves the transaction open: every
                # later BEGIN would fail until a restart. Rolled back, the next one can succeed.
                self._rollback_quietly()
                raise

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._rlock:
            rows: list[tuple[Any, ...]] = self._rconn.execute(sql, args).fetchall()
            return rows

    def commit_batch(self, ops: list[Callable[[sqlcipher3.Cursor], T]]) -> list[T | Exception]:
        """Run each op in its own savepoint inside ONE transaction (one fsync for all): an op
        that fails is rolled back alone and its exception returned in its place."""
        results: list[T | Exception] = []
        with self.transaction() as cur:
            for op in ops:
                cur.execute("SAVEPOINT op")
                try:
                    results.append(op(cur))
                # returned to the caller of that op
                except Exception as e:  # noqa: BLE001
                    cur.execute("ROLLBACK TO op")
                    results.append(e)
                cur.execute("RELEASE op")
        return results

    def _rollback_quietly(self) -> None:
        # Nothing open, or the disk refuses even that: the WAL keeps the last commit.
        with contextlib.suppress(sqlcipher3.Error):
            self._conn.rollback()

    def close(self) -> None:
        try:
            self.anchor_audit_head()
        except (sqlcipher3.Error, OSError) as e:
            log.warning("audit head not anchored at close: %s", fault_reason(e))
        with self._lock:
            try:
                self._rconn.close()
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlcipher3.Error as e:
                # A full disk cannot take the checkpoint; the WAL holds every commit and is
                # replayed at the next open, so shutting down is still safe.
                log.warning("closing the store without a checkpoint: %s", fault_reason(e))
            finally:
                self._conn.close()

    def migrate(self) -> None:
        with self._lock:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            for i, sql in enumerate(MIGRATIONS[version:], start=version + 1):
                self._conn.executescript("BEGIN IMMEDIATE;" + sql + f";PRAGMA user_version={i};COMMIT;")

    # -- audit ----------------------------------------------------------------------------
    audit_key: bytes | None = None  # set by open_store: rows are then chained by HMAC, not a bare hash

    @staticmethod
    def _row_hash(key: bytes | None, prev: str, ts: int, actor: str, action: str, object_id: str, detail: str) -> str:
        data = f"{prev}|{ts}|{actor}|{action}|{object_id}|{detail}".encode()
        return hmac.new(key, data, hashlib.sha256).hexdigest() if key else hashlib.sha256(data).hexdigest()

    def _audit(self, cur: sqlcipher3.Cursor, actor: str, action: str, object_id: str, detail: str = "") -> None:
        row = cur.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        prev = row[0] if row else "0" * 64
        ts = now_ms()
        h = self._row_hash(self.audit_key, prev, ts, actor, action, object_id, detail)
        cur.execute("INSERT INTO audit(ts_ms, actor, action, object_id, detail, prev_hash, hash, mac) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    (ts, actor, action, object_id, detail, prev, h, int(bool(self.audit_key))))

    def audit(self, actor: str, action: str, object_id: str, detail: str = "") -> None:
        """Metadata only: ids, counts, outcomes. Never report text or identifiers."""
        with self.transaction() as cur:
            self._audit(cur, actor, action, object_id, detail)

    # -- the chain's head, anchored outside the database ------------------------------------
    # Removing the newest rows leaves a chain that is intact as far as it goes; the head written
    # beside the database (at each export, verification and close), with its own MAC, shows they
    # were there. (The journal also gets the head at each anchoring.)
    @property
    def head_file(self) -> Path:
        return self.path.with_name(self.path.name + ".audit-head")

    def _head_mac(self, seq: int, h: str) -> str:
        return hmac.new(self.audit_key, f"{seq}|{h}".encode(), hashlib.sha256).hexdigest() if self.audit_key else ""

    def anchor_audit_head(self) -> None:
        rows = self._query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        if not rows:
            return
        seq, h = rows[0]
        replace_private(self.head_file, json.dumps({"seq": seq, "hash": h, "mac": self._head_mac(seq, h)}))
        log.info("audit head anchored seq=%d hash=%s", seq, h[:16])

    def _check_head(self, rows: list[tuple[Any, ...]]) -> None:
        try:
            head = json.loads(self.head_file.read_text())
            seq, h, mac = int(head["seq"]), str(head["hash"]), str(head.get("mac", ""))
        except FileNotFoundError:
            return
        except PermissionError:
            raise StoreKeyError(f"audit head {self.head_file} cannot be read by this user: give it to the service "
                                "user (chown), then verify again") from None
        except (ValueError, KeyError, TypeError):
            raise StoreKeyError(f"audit head {self.head_file} is unreadable: it was altered") from None
        if self.audit_key and not hmac.compare_digest(mac, self._head_mac(seq, h)):
            raise StoreKeyError(f"audit head {self.head_file} does not carry the audit key's MAC: it was altered")
        by_seq = {r[0]: r[7] for r in rows}
        newest = rows[-1][0] if rows else 0
        if seq > newest:
            raise StoreKeyError(f"audit log broken: it ends at row {newest}, but row {seq} was anchored "
                                f"in {self.head_file.name} (the newest rows were deleted)")
        if seq in by_seq and by_seq[seq] != h:
            raise StoreKeyError(f"audit log broken at row {seq}: it differs from the anchored head (rewritten)")

    def verify_audit_chain(self) -> int:
        """Rows checked; raises naming the first bad row (modified, deleted, reordered, or a bare
        hash after keyed rows began). The oldest row left by retention anchors the chain; the
        head anchored beside the database shows the newest rows were not removed."""
        rows = self._query("SELECT seq, ts_ms, actor, action, object_id, detail, prev_hash, hash, mac FROM audit "
                           "ORDER BY seq")
        self._check_head(rows)
        prev = rows[0][6] if rows else "0" * 64
        keyed = False
        for seq, ts, actor, action, obj, detail, p, h, mac in rows:
            if p != prev:
                raise StoreKeyError(f"audit log broken at row {seq}: it does not follow the row before it "
                                    "(a row before it was deleted, or rows were reordered)")
            if mac and self.audit_key is None:
                raise StoreKeyError("the audit rows are keyed: give the audit key to verify them")
            if keyed and not mac:
                raise StoreKeyError(f"audit log broken at row {seq}: an unkeyed row after keyed ones (rewritten)")
            expect = self._row_hash(self.audit_key if mac else None, prev, ts, actor, action, obj, detail)
            if not hmac.compare_digest(h, expect):
                raise StoreKeyError(f"audit log broken at row {seq}: its content was modified")
            keyed = keyed or bool(mac)
            prev = h
        return len(rows)

    def audit_rows(self, since_ms: int = 0) -> list[dict[str, object]]:
        """For the hospital's SIEM: metadata only, as stored."""
        rows = self._query("SELECT seq, ts_ms, actor, action, object_id, detail, hash FROM audit WHERE ts_ms >= ? "
                           "ORDER BY seq", (since_ms,))
        names = ("seq", "ts_ms", "actor", "action", "object_id", "detail", "hash")
        return [dict(zip(names, r, strict=True)) for r in rows]

    # -- intake ---------------------------------------------------------------------------
    def find_message(self, message_key: str) -> tuple[str | None, bytes | None, bytes | None] | None:
        """(document id, stored ACK, raw message) of a message committed under this key."""
        rows = self._query("SELECT document_id, ack, raw FROM raw_messages WHERE message_key=?", (message_key,))
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None

    @staticmethod
    def seen(cur: sqlcipher3.Cursor, message_key: str) -> tuple[str | None, bytes | None, bytes | None] | None:
        row = cur.execute("SELECT document_id, ack, raw FROM raw_messages WHERE message_key=?",
                          (message_key,)).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def insert_document(self, cur: sqlcipher3.Cursor, doc: NewDocument, actor: str, ack: bytes | None, *,
                        raw_row: bool = True) -> str:
        """`raw_row` False: a further document of a message already kept (an ORU's second patient)."""
        doc_id = new_id()
        ts = now_ms()
        if raw_row:
            cur.execute("INSERT INTO raw_messages(message_key, document_id, transport, raw, ack, received_ms, "
                        "patient_ref) VALUES (?,?,?,?,?,?,?)",
                        (doc.message_key, doc_id, doc.transport, doc.raw, ack, ts, doc.patient_ref))
        parsed_only = doc.deid_text is None
        cur.execute("INSERT INTO documents(id, kind, source, transport, status, patient_ref, deid_text, "
                    "phi_spans, message_key, document_ref, received_ms, original_text, known_json, result_status, "
                    "exam, modality, order_priority, patient_surrogate) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (doc_id, doc.kind, doc.source, doc.transport,
                     "PARSED" if parsed_only else ("CANCELLED" if doc.result_status == "cancelled" else "RECEIVED"),
                     doc.patient_ref, doc.deid_text or "", doc.phi_spans, doc.message_key, doc.document_ref, ts,
                     doc.original_text if parsed_only else None, known_to_json(doc.known) if parsed_only else None,
                     doc.result_status, doc.exam, doc.modality, doc.order_priority, doc.patient_surrogate))
        cur.executemany("INSERT OR IGNORE INTO surrogates(document_id, surrogate, original) VALUES (?,?,?)",
                        [(doc_id, s, o) for s, o in doc.surrogates.items()])
        self._merge_patient(cur, doc.patient_ref, doc.known)
        replaced = False
        if doc.replaces_ref:
            for (old_id,) in cur.execute(CURRENT_VERSIONS, (doc.patient_ref, doc.replaces_ref,
                                                            doc.document_ref or doc.replaces_ref, doc_id)).fetchall():
                cur.execute("UPDATE documents SET status='SUPERSEDED', superseded_by=? WHERE id=?", (doc_id, old_id))
                cur.execute("DELETE FROM jobs WHERE document_id=?", (old_id,))
                self._audit(cur, actor, "document.superseded", old_id, f"by={doc_id}")
                replaced = True
        if not parsed_only and doc.result_status != "cancelled":  # a cancelled result is kept, not summarised
            cur.execute("INSERT INTO jobs(document_id, priority, state, enqueued_ms, updated_ms) VALUES (?,?,?,?,?)",
                        (doc_id, max(doc.priority, REPLACEMENT_PRIORITY) if replaced else doc.priority, "PENDING",
                         ts, ts))
        self._audit(cur, actor, "document.received", doc_id,
                    f"kind={doc.kind} transport={doc.transport} phi_spans={doc.phi_spans}")
        return doc_id

    def claim_parsed(self, limit: int = 64) -> list[tuple[str, str, str, KnownIdentifiers, str]]:
        """Documents waiting for de-identification: (id, patient_ref, original text, declared ids,
        the exam as ordered, not yet de-identified either)."""
        rows = self._query("SELECT id, patient_ref, original_text, known_json, exam FROM documents "
                           "WHERE status='PARSED' ORDER BY received_ms LIMIT ?", (limit,))
        return [(r[0], r[1], r[2] or "", known_from_json(r[3]), r[4] or "") for r in rows]

    def complete_deid(self, items: list[tuple[str, str, int, dict[str, str], str]], actor: str) -> None:
        """(doc id, de-identified text, spans, surrogate map, de-identified exam) -> RECEIVED with a
        summary job; the original text is dropped from the row (the raw message keeps it)."""
        ts = now_ms()
        with self.transaction() as cur:
            for doc_id, text, spans, surrogates, exam in items:
                cur.execute("UPDATE documents SET deid_text=?, phi_spans=?, original_text=NULL, known_json=NULL, "
                            "exam=?, status='RECEIVED' WHERE id=? AND status='PARSED'", (text, spans, exam, doc_id))
                if cur.rowcount != 1:
                    continue  # superseded meanwhile
                cur.executemany("INSERT OR IGNORE INTO surrogates(document_id, surrogate, original) VALUES (?,?,?)",
                                [(doc_id, s, o) for s, o in surrogates.items()])
                cur.execute("UPDATE documents SET status='CANCELLED' WHERE id=? AND result_status='cancelled'",
                            (doc_id,))
                if cur.rowcount == 1:
                    self._audit(cur, actor, "document.deidentified", doc_id, f"phi_spans={spans} cancelled")
                    continue
                replaced = cur.execute("SELECT 1 FROM documents WHERE superseded_by=? LIMIT 1", (doc_id,)).fetchone()
                cur.execute("INSERT OR IGNORE INTO jobs(document_id, priority, state, enqueued_ms, updated_ms) "
                            "VALUES (?,?,?,?,?)", (doc_id, REPLACEMENT_PRIORITY if replaced else 0, "PENDING", ts, ts))
                cur.execute("UPDATE jobs SET state='PENDING' WHERE document_id=? AND state='HELD'", (doc_id,))
                self._audit(cur, actor, "document.deidentified", doc_id, f"phi_spans={spans}")

    def fail_deid(self, doc_id: str, reason: str, actor: str) -> None:
        """A document de-identification cannot finish (it raised): set aside as DEID_FAILED with
        the reason, so the documents behind it go on. Its text never reaches the model; the raw
        message is kept for the operator."""
        with self.transaction() as cur:
            cur.execute("UPDATE documents SET status='DEID_FAILED' WHERE id=? AND status='PARSED'", (doc_id,))
            self._audit(cur, actor, "document.deid_failed", doc_id, reason)

    def insert_update(self, cur: sqlcipher3.Cursor, message_key: str, transport: str, raw: bytes, actor: str,
                      action: str, patient_ref: str, known: KnownIdentifiers, merged_from: str,
                      ack: bytes | None) -> None:
        """Non-document messages (ADT): update demographics and remember the message."""
        cur.execute("INSERT INTO raw_messages(message_key, document_id, transport, raw, ack, received_ms, patient_ref) "
                    "VALUES (?,?,?,?,?,?,?)", (message_key, None, transport, raw, ack, now_ms(), patient_ref))
        self._merge_patient(cur, patient_ref, known)
        if merged_from:
            row = cur.execute("SELECT known_json FROM patients WHERE patient_ref=?", (merged_from,)).fetchone()
            if row:
                self._merge_patient(cur, patient_ref, known_from_json(row[0]))
            cur.execute("UPDATE patients SET merged_into=? WHERE patient_ref=?", (patient_ref, merged_from))
            cur.execute("UPDATE documents SET patient_ref=? WHERE patient_ref=?", (patient_ref, merged_from))
        self._audit(cur, actor, action, patient_ref[:16], f"transport={transport}")

    def insert_dead_letter(self, cur: sqlcipher3.Cursor, transport: str, reason: str, raw: bytes, actor: str) -> str:
        dl_id = new_id()
        cur.execute("INSERT INTO dead_letters(id, transport, reason, raw, received_ms) VALUES (?,?,?,?,?)",
                    (dl_id, transport, reason, raw, now_ms()))
        self._audit(cur, actor, "message.dead_lettered", dl_id, f"transport={transport}")
        return dl_id

    def _merge_patient(self, cur: sqlcipher3.Cursor, patient_ref: str, known: KnownIdentifiers) -> None:
        row = cur.execute("SELECT known_json, updated_ms FROM patients WHERE patient_ref=?", (patient_ref,)).fetchone()
        ts = now_ms()
        if row:
            stored = known_from_json(row[0])
            merged = stored.merged(known)
            if merged == stored and ts - row[1] < PATIENT_TOUCH_MS:
                return  # nothing new, and "last heard of" is fresh enough for retention (counted in days)
        else:
            merged = known
        cur.execute("INSERT INTO patients(patient_ref, known_json, updated_ms) VALUES (?,?,?) "
                    "ON CONFLICT(patient_ref) DO UPDATE SET known_json=excluded.known_json, "
                    "updated_ms=excluded.updated_ms", (patient_ref, known_to_json(merged), ts))

    def patient_known(self, patient_ref: str) -> KnownIdentifiers | None:
        rows = self._query("SELECT known_json FROM patients WHERE patient_ref=?", (patient_ref,))
        return known_from_json(rows[0][0]) if rows else None

    # -- documents ------------------------------------------------------------------------
    # The critical flag is the summary's (critical findings read from the report), once written.
    # A document still PARSED holds its exam as sent (de-identified with the text): not shown yet.
    _DOC_COLS = ("d.id, d.kind, d.source, d.transport, d.status, d.patient_ref, d.deid_text, d.phi_spans, "
                 "d.document_ref, d.superseded_by, d.received_ms, d.result_status, "
                 "CASE WHEN d.status = 'PARSED' THEN '' ELSE d.exam END, d.modality, d.order_priority, "
                 "d.patient_surrogate, coalesce(json_extract(s.structured, '$.is_critical'), 0)")
    _DOC_FROM = "documents d LEFT JOIN summaries s ON s.document_id = d.id"

    def get_document(self, doc_id: str) -> DocumentRow:
        rows = self._query(f"SELECT {self._DOC_COLS} FROM {self._DOC_FROM} WHERE d.id=?", (doc_id,))
        if not rows:
            raise NotFound(f"document {doc_id} not found")
        return DocumentRow(*rows[0])

    def list_documents(self, limit: int = 50) -> list[DocumentRow]:
        rows = self._query(f"SELECT {self._DOC_COLS} FROM {self._DOC_FROM} ORDER BY d.received_ms DESC, d.rowid DESC "
                           "LIMIT ?", (limit,))
        return [DocumentRow(*r) for r in rows]

    def oldest_pending_ms(self) -> int | None:
        """When the longest-waiting summary job was queued (epoch ms), or None."""
        v = self._query("SELECT min(enqueued_ms) FROM jobs WHERE state='PENDING'")[0][0]
        return int(v) if v is not None else None

    def pending_by_priority(self) -> dict[int, int]:
        return {int(p): int(n) for p, n in self._query(
            "SELECT priority, count(*) FROM jobs WHERE state='PENDING' GROUP BY priority")}

    def last_audit_ms(self, action: str) -> int | None:
        """When `action` was last written to the audit chain (epoch ms), or None."""
        v = self._query("SELECT max(ts_ms) FROM audit WHERE action=?", (action,))[0][0]
        return int(v) if v is not None else None

    def count_documents(self) -> int:
        return int(self._query("SELECT count(*) FROM documents")[0][0])

    def gauges(self) -> dict[str, dict[str, int]]:
        """Counts for monitoring (no content): documents by status, jobs by state, open dead
        letters by transport."""
        return {
            "documents": dict(self._query("SELECT status, count(*) FROM documents GROUP BY status")),
            "jobs": dict(self._query("SELECT state, count(*) FROM jobs GROUP BY state")),
            "dead_letters": dict(self._query("SELECT transport, count(*) FROM dead_letters "
                                             "WHERE resolved_ms IS NULL GROUP BY transport")),
        }

    def surrogate_map(self, doc_id: str) -> dict[str, str]:
        return dict(self._query("SELECT surrogate, original FROM surrogates WHERE document_id=?", (doc_id,)))

    # -- jobs and summaries ---------------------------------------------------------------
    def request_summary(self, doc_id: str, max_requested: int = 32) -> None:
        """A clinician is waiting: that document's job goes to the front of the queue. A document
        still being de-identified is held at the front until it is ready; a FAILED one is tried
        again. More than `max_requested` waiting requests: QueueFull, with the depth."""
        with self.transaction() as cur:
            row = cur.execute("SELECT state, priority FROM jobs WHERE document_id=?", (doc_id,)).fetchone()
            if row is not None and row[1] >= 10 and row[0] in ("PENDING", "HELD", "RUNNING"):
                return  # already at the front
            depth = cur.execute("SELECT COUNT(*) FROM jobs WHERE priority>=10 AND state IN ('PENDING','HELD')"
                                ).fetchone()[0]
            if depth >= max_requested:
                raise QueueFull(f"{depth} summary requests are waiting (model.max_requested = {max_requested}); "
                                "try again when the queue has drained")
            status = cur.execute("SELECT status FROM documents WHERE id=?", (doc_id,)).fetchone()
            ts = now_ms()
            if row is None and status is not None and status[0] == "PARSED":
                cur.execute("INSERT INTO jobs(document_id, priority, state, enqueued_ms, updated_ms) "
                            "VALUES (?,?,?,?,?)", (doc_id, 10, "HELD", ts, ts))
            elif row is None and status is not None and status[0] == "FAILED":
                cur.execute("INSERT INTO jobs(document_id, priority, state, enqueued_ms, updated_ms) "
                            "VALUES (?,?,?,?,?)", (doc_id, 10, "PENDING", ts, ts))
                cur.execute("UPDATE documents SET status='RECEIVED' WHERE id=?", (doc_id,))
            elif row is not None and row[0] == "FAILED":
                cur.execute("UPDATE jobs SET state='PENDING', priority=10, attempts=0, updated_ms=? "
                            "WHERE document_id=?", (ts, doc_id))
                cur.execute("UPDATE documents SET status='RECEIVED' WHERE id=? AND status='FAILED'", (doc_id,))
                self._audit(cur, "clinician", "summary.retried", doc_id, "")
            else:
                cur.execute("UPDATE jobs SET priority=10 WHERE document_id=? AND state IN ('PENDING','HELD') "
                            "AND priority<10", (doc_id,))

    def queue_depth(self) -> dict[str, int]:
        return {f"{state.lower()}_{'requested' if pri >= 10 else 'arrival'}": n for state, pri, n in self._query(
            "SELECT state, CASE WHEN priority>=10 THEN 10 ELSE 0 END AS p, COUNT(*) FROM jobs GROUP BY state, p")}

    def cancel_job(self, doc_id: str, actor: str) -> bool:
        """A requested summary no one waits for any more goes back to the ordinary queue."""
        with self.transaction() as cur:
            cur.execute("UPDATE jobs SET priority=0, state=CASE WHEN state='RUNNING' THEN 'PENDING' ELSE state END, "
                        "updated_ms=? WHERE document_id=? AND (state='RUNNING' OR "
                        "(priority>=10 AND state IN ('PENDING','HELD')))",
                        (now_ms(), doc_id))
            if cur.rowcount:
                cur.execute("UPDATE documents SET status='RECEIVED' WHERE id=? AND status='SUMMARIZING'", (doc_id,))
                self._audit(cur, actor, "summary.cancelled", doc_id, "")
            return bool(cur.rowcount)

    def claim_next_job(self, requested_only: bool = False, max_attempts: int = 2) -> str | None:
        with self.transaction() as cur:
            while True:
                row = cur.execute("SELECT document_id, attempts FROM jobs WHERE state='PENDING' AND priority >= ? "
                                  "ORDER BY priority DESC, enqueued_ms LIMIT 1", (10 if requested_only else -1000,)
                                  ).fetchone()
                if row is None:
                    return None
                if row[1] >= max_attempts:
                    # Claimed this often and never finished: it crashed or failed each time.
                    cur.execute("UPDATE jobs SET state='FAILED', updated_ms=? WHERE document_id=?", (now_ms(), row[0]))
                    cur.execute("UPDATE documents SET status='FAILED' WHERE id=?", (row[0],))
                    self._audit(cur, "worker", "summary.failed", row[0],
                                f"attempts={row[1]} (model.max_attempts); request the summary again to retry")
                    continue
                cur.execute("UPDATE jobs SET state='RUNNING', attempts=attempts+1, updated_ms=? WHERE document_id=?",
                            (now_ms(), row[0]))
                cur.execute("UPDATE documents SET status='SUMMARIZING' WHERE id=? AND status='RECEIVED'", (row[0],))
                return str(row[0])

    def queue_position(self, doc_id: str) -> int | None:
        """Summaries to be written before this document's (0: its own is being written; None: no
        job), by the queue's own order: requested first, then the oldest."""
        rows = self._query("SELECT priority, enqueued_ms, state, rowid FROM jobs WHERE document_id=?", (doc_id,))
        if not rows:
            return None
        priority, enqueued, state, rowid = rows[0]
        if state == "RUNNING":
            return 0
        if state != "PENDING":
            return None
        # Ties in time go by insertion order, as the worker's index takes them.
        return int(self._query("SELECT count(*) FROM jobs WHERE state='RUNNING' OR (state='PENDING' AND "
                               "(priority > ? OR (priority = ? AND "
                               "(enqueued_ms < ? OR (enqueued_ms = ? AND rowid < ?)))))",
                               (priority, priority, enqueued, enqueued, rowid))[0][0])

    def document_status(self, doc_id: str) -> str:
        rows = self._query("SELECT status FROM documents WHERE id=?", (doc_id,))
        return rows[0][0] if rows else ""

    def requeue_interrupted(self) -> int:
        """Jobs left RUNNING by a crash go back to the queue."""
        with self.transaction() as cur:
            cur.execute("UPDATE jobs SET state='PENDING' WHERE state='RUNNING'")
            n = cur.rowcount
            cur.execute("UPDATE documents SET status='RECEIVED' WHERE status='SUMMARIZING'")
            return int(n)

    def save_summary(self, s: SummaryRow, actor: str) -> None:
        with self.transaction() as cur:
            cur.execute("INSERT OR REPLACE INTO summaries(document_id, text, model, tokens, leaks_redacted, "
                        "created_ms, unsupported_numbers, structured, flags) VALUES (?,?,?,?,?,?,?,?,?)",
                        (s.document_id, s.text, s.model, s.tokens, s.leaks_redacted, s.created_ms,
                         json.dumps(list(s.unsupported_numbers)), s.structured, json.dumps(list(s.flags))))
            cur.execute("DELETE FROM jobs WHERE document_id=?", (s.document_id,))
            cur.execute("UPDATE documents SET status='SUMMARIZED' WHERE id=? AND status<>'SUPERSEDED'",
                        (s.document_id,))
            self._audit(cur, actor, "summary.created", s.document_id,
                        f"tokens={s.tokens} leaks_redacted={s.leaks_redacted} "
                        f"unsupported_numbers={len(s.unsupported_numbers)} flags={len(s.flags)}")

    def fail_job(self, doc_id: str, reason: str, actor: str) -> None:
        with self.transaction() as cur:
            cur.execute("UPDATE jobs SET state='FAILED', updated_ms=? WHERE document_id=?", (now_ms(), doc_id))
            cur.execute("UPDATE documents SET status='FAILED' WHERE id=?", (doc_id,))
            self._audit(cur, actor, "summary.failed", doc_id, reason)

    def get_summary(self, doc_id: str) -> SummaryRow | None:
        rows = self._query("SELECT document_id, text, model, tokens, leaks_redacted, created_ms, unsupported_numbers, "
                           "structured, flags FROM summaries WHERE document_id=?", (doc_id,))
        if not rows:
            return None
        doc_id, text, model, tokens, leaks, created, numbers, structured, flags = rows[0]
        return SummaryRow(doc_id, text, model, tokens, leaks, created, unsupported_numbers=tuple(json.loads(numbers)),
                          structured=structured, flags=tuple(json.loads(flags)))

    # -- dead letters ---------------------------------------------------------------------
    def list_dead_letters(self, limit: int = 50, include_resolved: bool = False) -> list[DeadLetterRow]:
        where = "" if include_resolved else "WHERE resolved_ms IS NULL"
        rows = self._query(f"SELECT id, transport, reason, raw, received_ms, resolved_ms FROM dead_letters {where} "
                           "ORDER BY received_ms DESC LIMIT ?", (limit,))
        return [DeadLetterRow(*r) for r in rows]

    def get_dead_letter(self, dl_id: str) -> DeadLetterRow:
        rows = self._query("SELECT id, transport, reason, raw, received_ms, resolved_ms FROM dead_letters WHERE id=?",
                           (dl_id,))
        if not rows:
            raise NotFound(f"dead letter {dl_id} not found")
        return DeadLetterRow(*rows[0])

    def resolve_dead_letter(self, dl_id: str, actor: str) -> None:
        with self.transaction() as cur:
            cur.execute("UPDATE dead_letters SET resolved_ms=? WHERE id=?", (now_ms(), dl_id))
            self._audit(cur, actor, "dead_letter.resolved", dl_id)


def _connect(path: Path, key: bytes, key_file: Path) -> sqlcipher3.Connection:
    conn = sqlcipher3.connect(str(path), check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA cipher_log_level = NONE")  # its own stderr lines are not for journald
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.DatabaseError:
        conn.close()
        pending = key_file.with_name(key_file.name + ".new")
        hint = (f" A key rotation was interrupted: {pending} holds the new key; move it to {key_file}."
                if pending.exists() else "")
        raise StoreKeyError(f"store: database {path} cannot be opened with the {describe(key_file)}: "
                            "wrong key, or not an appliance database. Restore the matching key file; "
                            "without it the data cannot be read." + hint) from None
    # Deleted rows are overwritten, not just unlinked: purged and erased text leaves no trace in
    # freed pages. A new database returns freed pages to the file system (incremental vacuum).
    conn.execute("PRAGMA secure_delete=ON")
    # Temporary tables and sort spills stay in memory, never in an unencrypted temp file.
    conn.execute("PRAGMA temp_store=MEMORY")
    if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # an ACK promises the commit survives power loss
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def open_store(path: Path, key_file: Path, audit_key_file: Path | None = None, *,
               memory_security: bool = False) -> Store:
    """`audit_key_file`: the audit MAC key (a credential apart from the database key); without it
    audit rows are chained by a bare hash, which whoever holds the database key could recompute."""
    key = read_key(key_file, "store")
    path.parent.mkdir(parents=True, exist_ok=True)
    if memory_security:
        # SQLCipher wipes (and locks against swap) the memory it frees, process-wide. Measured
        # (bench/store.py): commits fall from about 5,500 to 800 documents/s on this 2-core machine.
        probe = sqlcipher3.connect(":memory:")
        probe.execute("PRAGMA key = 'x'")
        probe.execute("PRAGMA cipher_memory_security = ON")
        probe.close()
    writer = _connect(path, key, key_file)
    store = Store(writer, writer, path)
    if writer.execute("PRAGMA auto_vacuum").fetchone()[0] == 0:
        # A database made before retention existed: one VACUUM turns incremental vacuum on.
        writer.execute("PRAGMA auto_vacuum=INCREMENTAL")
        writer.execute("VACUUM")
    store.migrate()  # before the reader opens, so it sees the schema
    store._rconn = _connect(path, key, key_file)
    if audit_key_file is not None:
        store.audit_key = read_key(audit_key_file, "audit")
    return store
