"""Intake: raw HL7 -> de-identified document committed with its job, or a dead letter.

Whatever the transport, a message is either committed whole or kept raw as a dead letter
with the reason; nothing is stored half. `prepare` does the CPU work (parse, de-identify,
build the ACK) outside any transaction; `CommitQueue` commits many prepared messages in one
transaction (group commit), and only then are their acknowledgements released."""
from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

from ..deid import deidentify, surrogate_name
from ..domain import Document, KnownIdentifiers, MessageHeader, PersonName
from ..errors import InvalidMessage
from ..ingest.dicom.complete import part10_body
from ..ingest.dicom.read import parse_dicom
from ..ingest.hl7.ack import acks_for
from ..ingest.hl7.er7 import decode_message, msh_segment, split_batch
from ..ingest.hl7.header import partial_header, read_header
from ..ingest.hl7.parse import ParsedMessage, parse
from ..store.db import NewDocument, Store
from ..store.faults import fault_reason
from .commit import CommitQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntakeResult:
    outcome: str  # ACCEPTED | DUPLICATE | UPDATED | REJECTED | ERROR
    header: MessageHeader | None = None
    document_id: str = ""
    reason: str = ""
    dead_letter_id: str = ""
    error: InvalidMessage | None = None
    acks: tuple[bytes, ...] = ()  # what to send back over MLLP, in order
    reference: str = ""  # DICOM: the SOP Instance UID
    kind: str = ""  # DICOM: the document kind
    more_document_ids: tuple[str, ...] = ()  # an ORU's further patients, one document each

    @property
    def ok(self) -> bool:
        return self.outcome in ("ACCEPTED", "DUPLICATE", "UPDATED")


@dataclass(frozen=True)
class Prepared:
    """A message ready to commit: everything computed, nothing written."""

    raw: bytes
    transport: str
    header: MessageHeader | None
    key: str = ""
    document: NewDocument | None = None
    parsed: ParsedMessage | None = None
    patient_ref: str = ""
    merged_from: str = ""
    error: InvalidMessage | None = None
    acks: tuple[bytes, ...] = ()
    more: tuple[NewDocument, ...] = ()  # an ORU's further patients, committed with the first


def message_key(h: MessageHeader) -> str:
    return f"{h.sending_app}|{h.sending_facility}|{h.control_id}"


def _partial(text: str) -> MessageHeader | None:
    try:
        return partial_header(msh_segment(text))
    except (InvalidMessage, IndexError):
        return None


def same_content(a: bytes | None, b: bytes) -> bool:
    """Whether a message resent under a control id already used is the same message: its segments
    after MSH are compared (an engine may restamp MSH-7 when it resends)."""
    if a is None:
        return True  # kept without its raw bytes (DICOM, updates): nothing to compare
    def body(raw: bytes) -> bytes:
        return b"\r".join(raw.replace(b"\r\n", b"\r").replace(b"\n", b"\r").strip(b"\r").split(b"\r")[1:])
    return body(a) == body(b)


def same_dataset(a: bytes, b: bytes) -> bool:
    """Whether two DICOM files carry the same dataset (the file meta a sender or this appliance
    wrote around it may differ)."""
    def body(raw: bytes) -> bytes:
        try:
            found = part10_body(raw)
        except InvalidMessage:
            return raw
        return found[0] if found is not None else raw
    return body(a) == body(b)


def reused_id(h: MessageHeader) -> InvalidMessage:
    return InvalidMessage(f"MSH-10 control id {h.control_id!r} was already used by a different message from this "
                          "sender; give each message its own control id (kept as a dead letter)",
                          segment="MSH", field=10, hl7_error_code="207")


def _join(acks: list[bytes]) -> bytes:
    return b"\x00".join(acks)


def _split(stored: bytes | None) -> tuple[bytes, ...]:
    return tuple(stored.split(b"\x00")) if stored else ()


class IntakeService:
    def __init__(self, store: Store, deid_secret: bytes, on_document: Callable[[str], object] | None = None,
                 commit_queue: CommitQueue | None = None
                 ) -> None:
        self._store = store
        self._secret = deid_secret
        self._on_document = on_document or (lambda doc_id: None)
        self._queue = commit_queue
        self.accepted = 0
        self.duplicates = 0
        self.rejected = 0
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (transport, outcome) -> messages
        self.last_prepare = 0.0  # monotonic time of the last message prepared

    def busy(self, window: float = 0.25) -> bool:
        return time.monotonic() - self.last_prepare < window

    def patient_ref(self, patient_key: str) -> str:
        return hmac.new(self._secret, b"ref:" + patient_key.encode(), hashlib.sha256).hexdigest()[:32]

    # -- entry points ---------------------------------------------------------------------
    def submit(self, raw: bytes, *, transport: str, source: str = "") -> list[IntakeResult]:
        """Bytes that may hold one message or a batch file -> one result per message."""
        return [f.result() for f in self.submit_async(raw, transport=transport, source=source)]

    def submit_async(self, raw: bytes, *, transport: str, source: str = "",
                     deid_now: bool = True) -> list[Future[IntakeResult]]:
        return [self.commit_async(p) for p in self.prepare_all(raw, transport=transport, source=source,
                                                               deid_now=deid_now)]

    def prepare_all(self, raw: bytes, *, transport: str, source: str = "", deid_now: bool = True) -> list[Prepared]:
        try:
            text = decode_message(raw)
            messages = split_batch(text)  # a batch, a file of messages, or one message
        except InvalidMessage as e:
            return [self.refuse(raw, e, transport, None)]
        if not messages:
            return [self.refuse(raw, InvalidMessage("no MSH segment found: not an HL7 v2 message",
                                                      segment="MSH", hl7_error_code="100"), transport, None)]
        return [self.prepare(m, transport=transport, source=source, deid_now=deid_now) for m in messages]

    def prepare(self, text: str, *, transport: str, source: str = "", deid_now: bool = True) -> Prepared:
        """`deid_now` False: commit the parsed document and let the de-identification stage
        finish it (MLLP, where the sender waits for each ACK)."""
        raw = text.encode("utf-8")
        self.last_prepare = time.monotonic()
        header = None
        try:
            header = read_header(msh_segment(text))
            key = message_key(header)
            seen = self._store.find_message(key)
            if seen is not None:  # fast path; the commit checks again under the write lock
                if not same_content(seen[2], raw):
                    return self.refuse(raw, reused_id(header), transport, header)
                return Prepared(raw, transport, header, key=key, acks=_split(seen[1]))
            parsed = parse(text, source=source)
        except InvalidMessage as e:
            if header is None:
                header = _partial(text)
            return self.refuse(raw, e, transport, header)
        pref = self.patient_ref(parsed.known.patient_key)
        acks = tuple(acks_for(header, True, None))
        if parsed.document is None:
            merged_from = self.patient_ref(parsed.prior_patient_key) if parsed.prior_patient_key else ""
            return Prepared(raw, transport, header, key=key, parsed=parsed, patient_ref=pref,
                            merged_from=merged_from, acks=acks)
        first = self._prepare_document(parsed.document, raw, transport, header, key, parsed, pref, acks, deid_now)
        if not parsed.more or first.error is not None:
            return first
        more = []
        for doc in parsed.more:
            p = self._prepare_document(doc, raw, transport, header, key, parsed,
                                       self.patient_ref(doc.known.patient_key), acks, deid_now)
            if p.error is not None:
                return p  # the whole message is refused: nothing of it is stored half
            if p.document is not None:  # prepared without error: it has its document
                more.append(p.document)
        return replace(first, more=tuple(more))

    def prepare_dicom(self, raw: bytes, *, transport: str, source: str = "", deid_now: bool = True) -> Prepared:
        """A DICOM Part 10 file (from C-STORE or gRPC) -> a prepared document or a refusal.
        The SOP Instance UID is the de-duplication key: a PACS that resends is answered as
        before, and nothing is stored twice."""
        self.last_prepare = time.monotonic()
        try:
            parsed = parse_dicom(raw, source=source)
        except InvalidMessage as e:
            return self.refuse(raw, e, transport, None)
        key = f"dicom|{parsed.sop_instance_uid}"
        seen = self._store.find_message(key)
        if seen is not None:
            if seen[2] is not None and not same_dataset(seen[2], raw):
                # Never dropped: a different report under a used instance UID is refused and kept.
                # (The first 64 characters are the C-STORE's Error Comment: the reason comes first.)
                return self.refuse(raw, InvalidMessage(
                    "a different report under a used SOP Instance UID; send a corrected report under a new "
                    f"instance UID (kept as a dead letter; {parsed.sop_instance_uid} was stored before)"), transport,
                    None)
            return Prepared(raw, transport, None, key=key)
        doc = parsed.document
        return self._prepare_document(doc, raw, transport, None, key, None, self.patient_ref(doc.known.patient_key),
                                      (), deid_now)

    def submit_dicom(self, raw: bytes, *, transport: str, source: str = "") -> IntakeResult:
        result: IntakeResult = self.commit_async(self.prepare_dicom(raw, transport=transport, source=source)).result()
        return result

    def _prepare_document(self, doc: Document, raw: bytes, transport: str, header: MessageHeader | None, key: str,
                          parsed: ParsedMessage | None, pref: str, acks: tuple[bytes, ...], deid_now: bool
                          ) -> Prepared:
        common: dict[str, Any] = dict(kind=doc.kind, source=doc.source, transport=transport, patient_ref=pref,
                      document_ref=doc.document_ref, raw=raw, message_key=key, known=doc.known,
                      replaces_ref=doc.replaces_control_id, result_status=doc.result_status,
                      **self._worklist_columns(doc, deid_now))
        if not deid_now:
            new = NewDocument(deid_text=None, phi_spans=0, surrogates={}, original_text=doc.text, **common)
            return Prepared(raw, transport, header, key=key, document=new, parsed=parsed, patient_ref=pref,
                            acks=acks)
        known = doc.known
        stored = self._store.patient_known(pref)  # identifiers learnt earlier (ADT) seed the scrubber
        if stored is not None:
            known = known.merged(stored)
        try:
            deid = deidentify(doc.text, known, self._secret)
        except Exception as e:  # noqa: BLE001 - a poison document is refused alone, never half-stored
            log.error("de-identification raised %s; message kept as a dead letter", type(e).__name__)
            err = InvalidMessage(f"de-identification failed on this report ({type(e).__name__}); kept as a dead "
                                 "letter for the vendor: resending will not help", hl7_error_code="207")
            return self.refuse(raw, err, transport, header)
        new = NewDocument(deid_text=deid.text, phi_spans=len(deid.spans), surrogates=deid.surrogates, **common)
        return Prepared(raw, transport, header, key=key, document=new, parsed=parsed, patient_ref=pref, acks=acks)

    def warm(self) -> None:
        """Load the de-identifier's word lists, tagger and surrogate pools now, at start, so the
        first message's ACK does not wait for them (measured: about a quarter of a second)."""
        known = KnownIdentifiers(patient_key="warm-up", patient_names=(PersonName(family="Warmup", given="Ada"),))
        deidentify("Seen by Dr. Warmup on 01/02/2024, MRN 1234567.", known, self._secret)
        surrogate_name(known, self._secret)

    def _worklist_columns(self, doc: Document, deid_now: bool) -> dict[str, str]:
        """What the worklist shows, with no identifier in it: the exam text de-identified like the
        report (an order comment can name someone; off the ACK path, with the report, for MLLP),
        the patient's surrogate name."""
        exam = deidentify(doc.exam, doc.known, self._secret).text if doc.exam and deid_now else doc.exam
        return {"exam": exam, "modality": doc.modality, "order_priority": doc.priority,
                "patient_surrogate": surrogate_name(doc.known, self._secret)}

    def refuse(self, raw: bytes, e: InvalidMessage, transport: str, header: MessageHeader | None) -> Prepared:
        """A message (or bytes) that will be kept as a dead letter and answered with `e`."""
        return Prepared(raw, transport, header, error=e, acks=tuple(acks_for(header, False, e)))

    def unstored(self, p: Prepared, fault: BaseException) -> IntakeResult:
        """The answer for a message a storage fault kept out of the database."""
        err = InvalidMessage(f"not stored: {fault_reason(fault)}", ack_code="AE", hl7_error_code="207")
        return IntakeResult("ERROR", p.header, reason=err.reason, error=err, acks=tuple(acks_for(p.header, False, err)))

    # -- commit ---------------------------------------------------------------------------
    def commit_async(self, p: Prepared) -> Future[IntakeResult]:
        if self._queue is not None:
            return self._queue.submit(self, p)
        f: Future[IntakeResult] = Future()
        f.set_result(self.commit_many([p])[0])
        return f

    def commit_many(self, items: list[Prepared]) -> list[IntakeResult]:
        ops: list[Callable[[Any], IntakeResult | Exception]] = [self._op(p) for p in items]
        try:
            results: list[IntakeResult | Exception] = list(self._store.commit_batch(ops))
        # the transaction itself failed (disk full, busy, read-only)
        except Exception as e:  # noqa: BLE001
            results = [e] * len(items)
        out = []
        for p, r in zip(items, results, strict=True):
            if isinstance(r, Exception):
                # A database fault: answered AE (DICOM 0xA700, gRPC UNAVAILABLE) with what went
                # wrong; nothing of the message is stored, so the sender's resend is safe.
                log.error("commit failed transport=%s error=%s", p.transport, type(r).__name__)
                r = self.unstored(p, r)
            out.append(r)
            self.outcomes[(p.transport, r.outcome)] += 1
            self._after(r)
        return out

    def _op(self, p: Prepared) -> Callable[[Any], IntakeResult]:
        def op(cur: Any) -> IntakeResult:
            if p.error is not None:
                dl = self._store.insert_dead_letter(cur, p.transport, p.error.reason, p.raw, p.transport)
                outcome = "ERROR" if p.error.ack_code == "AE" else "REJECTED"
                return IntakeResult(outcome, p.header, reason=p.error.reason, dead_letter_id=dl, error=p.error,
                                    acks=p.acks)
            ref = p.key.removeprefix("dicom|") if p.header is None else ""
            seen = self._store.seen(cur, p.key)
            if seen is not None and p.header is not None and not same_content(seen[2], p.raw):
                err = reused_id(p.header)
                dl = self._store.insert_dead_letter(cur, p.transport, err.reason, p.raw, p.transport)
                return IntakeResult("REJECTED", p.header, reason=err.reason, dead_letter_id=dl, error=err,
                                    acks=tuple(acks_for(p.header, False, err)))
            if seen is not None:  # committed before: the same answer again, nothing stored
                return IntakeResult("DUPLICATE", p.header, document_id=seen[0] or "", acks=_split(seen[1]) or p.acks,
                                    reference=ref)
            if p.document is None and p.parsed is None:  # prepared as a duplicate that has since vanished
                raise RuntimeError("duplicate without a stored message")
            stored_ack = _join(list(p.acks))
            if p.document is not None:
                doc_id = self._store.insert_document(cur, p.document, p.transport, stored_ack)
                more = tuple(self._store.insert_document(cur, d, p.transport, None, raw_row=False) for d in p.more)
                return IntakeResult("ACCEPTED", p.header, document_id=doc_id, acks=p.acks, reference=ref,
                                    kind=p.document.kind, more_document_ids=more)
            parsed = p.parsed
            if parsed is None:  # narrowed above: a message with no document is a patient update
                raise RuntimeError("update without its parsed message")
            self._store.insert_update(cur, p.key, p.transport, p.raw, p.transport, f"patient.{parsed.action}",
                                      p.patient_ref, parsed.known, p.merged_from, stored_ack)
            return IntakeResult("UPDATED", p.header, acks=p.acks)
        return op

    def _after(self, r: IntakeResult) -> None:
        if r.outcome == "ACCEPTED":
            self.accepted += 1
            log.info("document accepted id=%s kind=%s", r.document_id, r.header.message_type if r.header else r.kind)
            self._on_document(r.document_id)
            for doc_id in r.more_document_ids:
                self._on_document(doc_id)
        elif r.outcome == "DUPLICATE":
            self.duplicates += 1
        elif r.outcome in ("REJECTED", "ERROR"):
            self.rejected += 1
            # The reason may quote the message (a field-shifted MSH put a patient's name where the
            # message type belongs): the log gets codes and lengths, the dead letter the words.
            e = r.error
            log.warning("message refused dead_letter=%s hl7_error=%s at=%s%s reason_chars=%d", r.dead_letter_id,
                        e.hl7_error_code if e else "", e.segment if e else "", f"-{e.field}" if e and e.field else "",
                        len(r.reason))


__all__ = ["IntakeResult", "IntakeService", "Prepared", "message_key"]
