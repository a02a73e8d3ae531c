"""The appliance's use cases as plain Python: documents, dead letters, summaries followed and
cancelled, re-identification, and the administrator's status, erasure, backup, check and audit.
The gRPC servicer translates protobuf to these calls and back, and nothing more; the rules
(admission of followers, what a resubmission resolves, where a backup goes, what a patient
reference looks like) live here, where a test can call them without a server."""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidRequest, QueueFull, StoreKeyError, SummaryFailed
from ..ingest.dicom.read import is_dicom_file
from ..llm.worker import FailedEvent, FinalEvent, SummaryHub, TokenEvent
from ..store.db import DeadLetterRow, DocumentRow, Store, SummaryRow
from ..store.lifecycle import backup, check, erase_patient
from .intake import IntakeResult, IntakeService
from .reidentify import Reidentified, reidentify

log = logging.getLogger(__name__)
__all__ = ["Core", "DeadLetterRow", "DocumentRow", "Queued", "SummaryRow"]


@dataclass(frozen=True)
class Queued:
    """Where a followed summary stands before its first word: jobs ahead, and a guess in seconds."""
    ahead: int
    estimate_s: float


def limit(n: int) -> int:
    if n < 0:
        raise InvalidRequest("limit must be 0 (default 50) or positive")
    return min(n or 50, 1000)


class Core:
    def __init__(self, store: Store, intake: IntakeService, hub: SummaryHub, wake_worker: Callable[[], object],
                 cancel_running: Callable[[str], bool] = lambda doc_id: False, max_requested: int = 32,
                 on_arrival: bool = True, status: Callable[[], dict[str, object]] = lambda: {},
                 backups_dir: Path | None = None, max_followers: int = 24,
                 pace: Callable[[], float] = lambda: 0.0) -> None:
        self.store, self.intake, self.hub = store, intake, hub
        self._wake, self._cancel_running, self._status = wake_worker, cancel_running, status
        self._max_requested, self._on_arrival = max_requested, on_arrival
        self._backups = backups_dir
        self._pace = pace  # seconds per summary lately (0.0: not known yet), for the queue's estimate
        self._max_followers = max_followers
        self._followers = 0
        self._followers_lock = threading.Lock()
        self.followers_refused = 0

    # -- intake and documents -----------------------------------------------------------------
    def submit_hl7(self, raw: bytes, source: str) -> list[IntakeResult]:
        if not raw:
            raise InvalidRequest("message is required: the HL7 v2 message bytes")
        return self.intake.submit(raw, transport="grpc", source=source)

    def submit_dicom(self, raw: bytes, source: str) -> IntakeResult:
        if not raw:
            raise InvalidRequest("file is required: the DICOM Part 10 bytes of a structured report")
        return self.intake.submit_dicom(raw, transport="grpc", source=source)

    def document(self, doc_id: str) -> DocumentRow:
        if not doc_id:
            raise InvalidRequest("document_id is required")
        return self.store.get_document(doc_id)

    def documents(self, n: int) -> list[DocumentRow]:
        return self.store.list_documents(limit(n))

    def dead_letters(self, n: int) -> list[DeadLetterRow]:
        return self.store.list_dead_letters(limit(n))

    def resubmit(self, dead_letter_id: str, corrected: bytes = b"") -> list[IntakeResult]:
        """A dead letter through intake again (corrected, or as it was); resolved when all of it
        was accepted."""
        if not dead_letter_id:
            raise InvalidRequest("dead_letter_id is required")
        dead = self.store.get_dead_letter(dead_letter_id)
        if dead.resolved_ms is not None:
            raise InvalidRequest(f"dead letter {dead.id} is already resolved")
        raw = corrected or dead.raw
        if is_dicom_file(raw):
            results = [self.intake.submit_dicom(raw, transport=dead.transport, source="resubmitted")]
        else:
            results = self.intake.submit(raw, transport=dead.transport, source="resubmitted")
        if all(r.ok for r in results):
            self.store.resolve_dead_letter(dead.id, "api")
        return results

    def reidentify(self, doc_id: str, purpose: str, actor: str, reason: str) -> Reidentified:
        if not doc_id:
            raise InvalidRequest("document_id is required")
        return reidentify(self.store, doc_id, purpose, actor=actor, reason=reason)

    # -- administration ---------------------------------------------------------------------
    def refused_remote(self, actor: str, what: str) -> None:
        """An administrative call from the network, refused: recorded under the person it names."""
        self.store.audit(actor or "unknown", "access.refused", what, "local-only RPC over TCP")

    def status(self) -> dict[str, object]:
        return self._status()

    def erase(self, patient: str, actor: str, dry_run: bool) -> dict[str, int]:
        issuer, sep, pid = patient.partition(":")
        if not sep or not pid.strip():
            raise InvalidRequest("patient must be ISSUER:ID (the assigning authority and the id of PID-3, "
                                 "e.g. GH:MRN4471902; an empty issuer is written :ID)")
        ref = self.intake.patient_ref(f"{issuer.strip()}|{pid.strip()}")
        return erase_patient(self.store, ref, actor=actor, dry_run=dry_run)

    def backup(self, name: str, actor: str) -> tuple[Path, str, int]:
        """(the file, its key in hex, documents in it), under store.backup_dir."""
        name = name or time.strftime("appliance-%Y%m%dT%H%M%SZ.db", time.gmtime())
        if "/" in name or name.startswith("."):
            raise InvalidRequest("name must be a plain file name; backups are written under store.backup_dir")
        if self._backups is None:
            raise RuntimeError("backups_dir was not given to the core")
        out = self._backups / name
        key = backup(self.store, out, actor=actor or "backup")
        return out, key, self.store.count_documents()

    def check(self, quick: bool) -> list[str]:
        return check(self.store, full=not quick)

    def verify_audit(self) -> tuple[bool, int, str]:
        """(intact, rows checked, the first problem)."""
        try:
            rows = self.store.verify_audit_chain()
        except StoreKeyError as e:
            return False, 0, str(e)
        self.store.anchor_audit_head()
        return True, rows, ""

    def export_audit(self, since_ms: int) -> Iterator[dict[str, object]]:
        yield from self.store.audit_rows(since_ms)
        self.store.anchor_audit_head()  # what was exported cannot now be removed unseen

    # -- summaries --------------------------------------------------------------------------
    def cancel_summary(self, doc_id: str) -> bool:
        if not doc_id:
            raise InvalidRequest("document_id is required")
        self.store.get_document(doc_id)  # NotFound names the id
        return self._cancel_job(doc_id)

    def _cancel_job(self, doc_id: str) -> bool:
        cancelled = self.store.cancel_job(doc_id, "client")
        return self._cancel_running(doc_id) or cancelled

    def follower_gone(self, doc_id: str) -> None:
        """When the last clinician waiting for an on-request summary goes away, stop it."""
        if not self._on_arrival and not self.hub.followers(doc_id) and self._cancel_job(doc_id):
            log.info("summary request for %s cancelled: the client went away", doc_id)

    def follow(self, doc_id: str, active: Callable[[], bool],
               on_follow: Callable[[], object] = lambda: None) -> Iterator[tuple[SummaryRow, bool] | Queued | str]:
        """A summary as a clinician waits for it: the stored one at once ((summary, stale));
        else a place in the queue (Queued) while waiting, each grounded line (str) as it comes,
        and the final (summary, False). `on_follow` runs once the request is admitted (the
        server registers there what to do when the client goes)."""
        doc = self.document(doc_id)
        q = self.hub.subscribe(doc_id)
        following = False
        try:
            done = self.store.get_summary(doc_id)
            if done is not None:
                yield done, doc.status == "SUPERSEDED"
                return
            if doc.status == "SUPERSEDED":
                raise SummaryFailed(f"document {doc_id} was superseded by {doc.superseded_by}; "
                                    "follow that document instead")
            with self._followers_lock:
                if self._followers >= self._max_followers:
                    self.followers_refused += 1
                    raise QueueFull(f"{self._followers} clients are already following summaries (config key "
                                    "grpc.max_followers); retry shortly, or read the summary when it is done")
                self._followers += 1
            following = True
            self.store.request_summary(doc_id, self._max_requested)  # a FAILED document is retried
            self._wake()
            on_follow()
            yield from self._events(doc_id, q, active)
        finally:
            self.hub.unsubscribe(doc_id, q)
            if following:
                with self._followers_lock:
                    self._followers -= 1

    def _events(self, doc_id: str, q: queue.Queue[Any],
                active: Callable[[], bool]) -> Iterator[tuple[SummaryRow, bool] | Queued | str]:
        shown: int | None = -1
        writing = False
        while active():
            if not writing and (ahead := self.store.queue_position(doc_id)) != shown and ahead is not None:
                shown = ahead
                yield Queued(ahead, round((ahead + 1) * self._pace(), 1))
            try:
                ev = q.get(timeout=1.0)
            except queue.Empty:
                continue
            writing = writing or isinstance(ev, TokenEvent)
            if isinstance(ev, TokenEvent):
                yield ev.text
            elif isinstance(ev, FinalEvent):
                yield ev.summary, False
                return
            elif isinstance(ev, FailedEvent):
                raise SummaryFailed(f"summary of document {doc_id} failed: {ev.reason}")
