"""Intake: raw HL7 -> de-identified document committed with its job, or a dead letter.

Whatever the transport, a message is either committed whole or kept raw as a dead
letter with the reason; nothing is stored half."""
from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass

import sqlcipher3

from ..deid import deidentify
from ..domain import MessageHeader
from ..errors import InvalidMessage
from ..ingest.hl7.er7 import decode_message, is_batch, split_batch, split_segments
from ..ingest.hl7.header import read_header
from ..ingest.hl7.parse import parse
from ..store.db import NewDocument, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntakeResult:
    outcome: str  # ACCEPTED | DUPLICATE | UPDATED | REJECTED | ERROR
    header: MessageHeader | None = None
    document_id: str = ""
    reason: str = ""
    dead_letter_id: str = ""
    error: InvalidMessage | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("ACCEPTED", "DUPLICATE", "UPDATED")


def message_key(h: MessageHeader) -> str:
    return f"{h.sending_app}|{h.sending_facility}|{h.control_id}"


class IntakeService:
    def __init__(self, store: Store, deid_secret: bytes, on_document=None) -> None:
        self._store = store
        self._secret = deid_secret
        self._on_document = on_document or (lambda doc_id: None)
        self.accepted = 0
        self.duplicates = 0
        self.rejected = 0

    def patient_ref(self, patient_key: str) -> str:
        return hmac.new(self._secret, b"ref:" + patient_key.encode(), hashlib.sha256).hexdigest()[:32]

    def submit(self, raw: bytes, *, transport: str, source: str = "") -> list[IntakeResult]:
        """Bytes that may hold one message or a batch file -> one result per message."""
        try:
            text = decode_message(raw)
            messages = split_batch(text) if is_batch(text) else [text]
        except InvalidMessage as e:
            return [self._dead(raw, e, transport, None)]
        if not messages:
            return [self._dead(raw, InvalidMessage("no MSH segment found: not an HL7 v2 message",
                                                   segment="MSH", hl7_error_code="100"), transport, None)]
        return [self.submit_one(m, transport=transport, source=source) for m in messages]

    def submit_one(self, text: str, *, transport: str, source: str = "") -> IntakeResult:
        raw = text.encode("utf-8")
        header = None
        try:
            header = read_header(split_segments(text)[0])
            key = message_key(header)
            seen = self._store.find_message(key)
            if seen is not None:
                self.duplicates += 1
                return IntakeResult("DUPLICATE", header, document_id=seen[0] or "")
            parsed = parse(text, source=source)
        except InvalidMessage as e:
            return self._dead(raw, e, transport, header)
        pref = self.patient_ref(parsed.known.patient_key)
        try:
            if parsed.document is None:
                merged_from = self.patient_ref(parsed.prior_patient_key) if parsed.prior_patient_key else ""
                self._store.record_message(key, transport, raw, transport, f"patient.{parsed.action}", pref,
                                           parsed.known, merged_from=merged_from)
                self.accepted += 1
                return IntakeResult("UPDATED", header)
            doc = parsed.document
            # Identifiers learnt earlier (ADT) for this patient seed the scrubber too.
            known = doc.known
            stored = self._store.patient_known(pref)
            if stored is not None:
                known = known.merged(stored)
            deid = deidentify(doc.text, known, self._secret)
            doc_id = self._store.commit_document(NewDocument(
                kind=doc.kind, source=doc.source, transport=transport, patient_ref=pref, deid_text=deid.text,
                phi_spans=len(deid.spans), document_ref=doc.document_ref, surrogates=deid.surrogates, raw=raw,
                message_key=key, known=doc.known, replaces_ref=doc.replaces_control_id), transport)
        except sqlcipher3.IntegrityError:
            # The same message committed concurrently on another connection: a duplicate.
            seen = self._store.find_message(key)
            self.duplicates += 1
            return IntakeResult("DUPLICATE", header, document_id=(seen[0] or "") if seen else "")
        self.accepted += 1
        log.info("document accepted id=%s kind=%s transport=%s phi_spans=%d", doc_id, doc.kind, transport,
                 len(deid.spans))
        self._on_document(doc_id)
        return IntakeResult("ACCEPTED", header, document_id=doc_id)

    def _dead(self, raw: bytes, e: InvalidMessage, transport: str, header: MessageHeader | None) -> IntakeResult:
        dl = self._store.add_dead_letter(transport, e.reason, raw, transport)
        self.rejected += 1
        outcome = "ERROR" if e.ack_code == "AE" else "REJECTED"
        log.warning("message refused dead_letter=%s transport=%s reason=%s", dl, transport, e.reason)
        return IntakeResult(outcome, header, reason=e.reason, dead_letter_id=dl, error=e)
