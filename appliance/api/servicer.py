"""gRPC servicer: translation between protobuf and the plain services, nothing more."""
from __future__ import annotations

from collections.abc import Callable

from typing import Any

import json
import logging
import queue
import threading
import time
from pathlib import Path

import grpc

from .access import actor, current
from ..errors import InvalidMessage, InvalidRequest, NotReady, PermissionDenied, QueueFull, StoreKeyError, SummaryFailed
from ..ingest.dicom.read import is_dicom_file
from ..llm.worker import FailedEvent, FinalEvent, SummaryHub, TokenEvent
from ..services.intake import IntakeResult, IntakeService
from ..services.reidentify import reidentify
from ..store.db import DocumentRow, Store, SummaryRow
from ..store.lifecycle import backup, check, erase_patient
from ..v1 import appliance_pb2 as pb
from ..v1 import appliance_pb2_grpc as pb_grpc


def _result(r: IntakeResult) -> pb.SubmitResult:
    return pb.SubmitResult(outcome=pb.Outcome.Value(r.outcome), document_id=r.document_id,
                           message_control_id=r.header.control_id if r.header else r.reference,
                           message_type=r.header.message_type if r.header else r.kind, reason=r.reason,
                           dead_letter_id=r.dead_letter_id)


def _results(r: IntakeResult) -> list[pb.SubmitResult]:
    first = _result(r)
    out = [first]
    for doc_id in r.more_document_ids:
        extra = pb.SubmitResult()
        extra.CopyFrom(first)
        extra.document_id = doc_id
        out.append(extra)
    return out


def document_pb(d: DocumentRow) -> pb.Document:
    return pb.Document(id=d.id, kind=d.kind, source=d.source, status=pb.DocumentStatus.Value(d.status),
                       deidentified_text=d.deid_text, received_unix_ms=d.received_ms, phi_spans_replaced=d.phi_spans,
                       result_status=d.result_status, superseded_by=d.superseded_by or "", exam=d.exam,
                       modality=d.modality, priority=d.order_priority, patient_surrogate=d.patient_surrogate,
                       critical=bool(d.critical))


log = logging.getLogger(__name__)


def summary_pb(s: SummaryRow, stale: bool = False) -> pb.Summary:
    return pb.Summary(document_id=s.document_id, text=s.text, model=s.model, tokens=s.tokens,
                      leaks_redacted=s.leaks_redacted, created_unix_ms=s.created_ms,
                      unsupported_numbers=list(s.unsupported_numbers), grounding_flags=list(s.flags),
                      structured_json=s.structured, stale=stale)


def _limit(n: int) -> int:
    if n < 0:
        raise InvalidRequest("limit must be 0 (default 50) or positive")
    return min(n or 50, 1000)


def _refusal(r: IntakeResult) -> Exception:
    """A fault that may pass (the store could not commit; nothing was kept) is UNAVAILABLE, which
    clients retry; a refusal the same input will always get is INVALID_ARGUMENT, kept as a dead letter."""
    if not r.dead_letter_id:
        return NotReady(f"{r.reason} (nothing was stored)")
    return InvalidMessage(f"{r.reason} (kept as dead letter {r.dead_letter_id})")


class ApplianceServicer(pb_grpc.ApplianceServicer):
    """Registered before the server starts (gRPC requires it); answers UNAVAILABLE until
    `attach` hands it the services, i.e. until the store is open and the model loaded."""

    def __init__(self) -> None:
        self._ready = False

    def attach(self, store: Store, intake: IntakeService, hub: SummaryHub, wake_worker: Callable[[], object],
               cancel_running: Callable[[str], bool] = lambda doc_id: False, max_requested: int = 32,
               on_arrival: bool = True, status: Callable[[], dict[str, object]] = lambda: {},
               backups_dir: Path | None = None, max_followers: int = 24,
               pace: Callable[[], float] = lambda: 0.0) -> None:
        self._pace = pace  # seconds per summary lately (0.0: not known yet), for the queue's estimate
        self._max_followers = max_followers
        self._followers = 0
        self._followers_lock = threading.Lock()
        self.followers_refused = 0
        self._status = status
        self._backups = backups_dir
        self._store = store
        self._intake = intake
        self._hub = hub
        self._wake = wake_worker
        self._cancel_running = cancel_running
        self._max_requested = max_requested
        self._on_arrival = on_arrival
        self._ready = True

    def _check(self) -> None:
        if not self._ready:
            raise NotReady("appliance is starting (opening the store, loading the model); retry shortly")

    def SubmitHL7(self, request: pb.SubmitHL7Request, context: grpc.ServicerContext) -> pb.SubmitHL7Response:
        self._check()
        if not request.message:
            raise InvalidRequest("message is required: the HL7 v2 message bytes")
        results = self._intake.submit(request.message, transport="grpc", source=request.source)
        if len(results) == 1 and not results[0].ok:
            raise _refusal(results[0])
        # An ORU with several patients answers one result per document it became.
        return pb.SubmitHL7Response(results=[x for r in results for x in _results(r)])

    def SubmitDICOM(self, request: pb.SubmitDICOMRequest, context: grpc.ServicerContext) -> pb.SubmitResult:
        self._check()
        if not request.file:
            raise InvalidRequest("file is required: the DICOM Part 10 bytes of a structured report")
        r = self._intake.submit_dicom(request.file, transport="grpc", source=request.source)
        if not r.ok:
            raise _refusal(r)
        return _result(r)

    def GetDocument(self, request: pb.GetDocumentRequest, context: grpc.ServicerContext) -> pb.Document:
        self._check()
        if not request.document_id:
            raise InvalidRequest("document_id is required")
        return document_pb(self._store.get_document(request.document_id))

    def ListDocuments(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._check()
        docs = self._store.list_documents(_limit(request.limit))
        return pb.ListDocumentsResponse(documents=[document_pb(d) for d in docs])

    def ListDeadLetters(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._check()
        rows = self._store.list_dead_letters(_limit(request.limit))
        return pb.ListDeadLettersResponse(dead_letters=[
            pb.DeadLetter(id=r.id, reason=r.reason, transport=r.transport, received_unix_ms=r.received_ms,
                          size_bytes=len(r.raw)) for r in rows])

    def ResubmitDeadLetter(self, request: pb.ResubmitDeadLetterRequest,
                           context: grpc.ServicerContext) -> pb.SubmitHL7Response:
        self._check()
        if not request.dead_letter_id:
            raise InvalidRequest("dead_letter_id is required")
        dead = self._store.get_dead_letter(request.dead_letter_id)
        if dead.resolved_ms is not None:
            raise InvalidRequest(f"dead letter {dead.id} is already resolved")
        raw = request.corrected_message or dead.raw
        if is_dicom_file(raw):
            results = [self._intake.submit_dicom(raw, transport=dead.transport, source="resubmitted")]
        else:
            results = self._intake.submit(raw, transport=dead.transport, source="resubmitted")
        if all(r.ok for r in results):
            self._store.resolve_dead_letter(dead.id, "api")
        # An ORU with several patients answers one result per document it became.
        return pb.SubmitHL7Response(results=[x for r in results for x in _results(r)])

    def Reidentify(self, request: pb.ReidentifyRequest, context: grpc.ServicerContext) -> pb.ReidentifyResponse:
        self._check()
        self._local_only(context, "re-identification")
        if not request.document_id:
            raise InvalidRequest("document_id is required")
        purpose = pb.Purpose.Name(request.purpose) if request.purpose else ""
        r = reidentify(self._store, request.document_id, purpose, actor=actor(), reason=request.reason)
        return pb.ReidentifyResponse(document_id=r.document_id, text=r.text, summary=r.summary)

    def WhoAmI(self, request: pb.WhoAmIRequest, context: grpc.ServicerContext) -> pb.WhoAmIResponse:
        who = current.get()
        return pb.WhoAmIResponse(actor=who.actor if who else "", roles=sorted(who.roles) if who else [],
                                 local=self._is_local())

    @staticmethod
    def _is_local() -> bool:
        """A person on this machine, proven by the kernel; a TLS client is remote even when it
        reaches a unix socket (the TCP port's proxy under socket activation)."""
        who = current.get()
        return bool(who and who.local)

    def _local_only(self, context: grpc.ServicerContext, what: str) -> None:
        if not self._is_local():
            # Refused, and recorded with the person the certificate names: an administrator's
            # reviewer sees who tried an administrative call from the network.
            if self._store is not None:
                self._store.audit(actor() or "unknown", "access.refused", what, "local-only RPC over TCP")
            raise PermissionDenied(f"{what} is served only on the local unix socket (config key grpc.unix_socket)")

    def GetStatus(self, request: pb.GetStatusRequest, context: grpc.ServicerContext) -> pb.GetStatusResponse:
        self._check()
        self._local_only(context, "status")
        return pb.GetStatusResponse(json=json.dumps(self._status(), sort_keys=True))

    def ErasePatient(self, request: pb.ErasePatientRequest, context: grpc.ServicerContext) -> pb.ErasePatientResponse:
        self._check()
        self._local_only(context, "erasure")
        issuer, sep, pid = request.patient.partition(":")
        if not sep or not pid.strip():
            raise InvalidRequest("patient must be ISSUER:ID (the assigning authority and the id of PID-3, "
                                 "e.g. GH:MRN4471902; an empty issuer is written :ID)")
        ref = self._intake.patient_ref(f"{issuer.strip()}|{pid.strip()}")
        counts = erase_patient(self._store, ref, actor=actor(), dry_run=request.dry_run)
        return pb.ErasePatientResponse(documents=counts["documents"], messages=counts["messages"],
                                       identities=counts["patients"])

    def Backup(self, request: pb.BackupRequest, context: grpc.ServicerContext) -> pb.BackupResponse:
        self._check()
        self._local_only(context, "backup")
        name = request.name or time.strftime("appliance-%Y%m%dT%H%M%SZ.db", time.gmtime())
        if "/" in name or name.startswith("."):
            raise InvalidRequest("name must be a plain file name; backups are written under store.backup_dir")
        if self._backups is None:
            raise RuntimeError("backups_dir was not given to attach()")
        out = self._backups / name
        key = backup(self._store, out, actor=actor() or "backup")
        return pb.BackupResponse(path=str(out), key_hex=key, documents=self._store.count_documents())

    def CheckStore(self, request: pb.CheckStoreRequest, context: grpc.ServicerContext) -> pb.CheckStoreResponse:
        self._check()
        self._local_only(context, "the store check")
        return pb.CheckStoreResponse(problems=check(self._store, full=not request.quick))

    def VerifyAudit(self, request: pb.VerifyAuditRequest, context: grpc.ServicerContext) -> pb.VerifyAuditResponse:
        self._check()
        self._local_only(context, "audit verification")
        try:
            rows = self._store.verify_audit_chain()
        except StoreKeyError as e:
            return pb.VerifyAuditResponse(ok=False, problem=str(e))
        self._store.anchor_audit_head()
        return pb.VerifyAuditResponse(ok=True, rows=rows)

    def ExportAudit(self, request: pb.ExportAuditRequest, context: grpc.ServicerContext) -> Any:
        self._check()
        self._local_only(context, "audit export")
        for row in self._store.audit_rows(request.since_unix_ms):
            yield pb.AuditRow(json=json.dumps(row, sort_keys=True))
        self._store.anchor_audit_head()  # what was exported cannot now be removed unseen

    def _follower_gone(self, doc_id: str) -> None:
        """When the last clinician waiting for an on-request summary goes away, stop it."""
        if not self._on_arrival and not self._hub.followers(doc_id) and self._cancel_job(doc_id):
            log.info("summary request for %s cancelled: the client went away", doc_id)

    def _cancel_job(self, doc_id: str) -> bool:
        cancelled = self._store.cancel_job(doc_id, "client")
        return self._cancel_running(doc_id) or cancelled

    def CancelSummary(self, request: pb.CancelSummaryRequest, context: grpc.ServicerContext) -> Any:
        self._check()
        if not request.document_id:
            raise InvalidRequest("document_id is required")
        self._store.get_document(request.document_id)  # NotFound names the id
        return pb.CancelSummaryResponse(cancelled=self._cancel_job(request.document_id))

    def StreamSummary(self, request: pb.StreamSummaryRequest, context: grpc.ServicerContext) -> Any:
        self._check()
        doc_id = request.document_id
        if not doc_id:
            raise InvalidRequest("document_id is required")
        doc = self._store.get_document(doc_id)
        q = self._hub.subscribe(doc_id)
        following = False
        try:
            done = self._store.get_summary(doc_id)
            if done is not None:
                yield pb.SummaryEvent(final=summary_pb(done, stale=doc.status == "SUPERSEDED"))
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
            self._store.request_summary(doc_id, self._max_requested)  # a FAILED document is retried
            self._wake()
            context.add_callback(lambda: self._follower_gone(doc_id))
            shown: int | None = -1
            writing = False
            while context.is_active():
                if not writing and (ahead := self._store.queue_position(doc_id)) != shown and ahead is not None:
                    shown = ahead
                    pace = self._pace()
                    yield pb.SummaryEvent(queued=pb.QueuePosition(ahead=ahead, estimate_s=round((ahead + 1) * pace, 1)))
                try:
                    ev = q.get(timeout=1.0)
                except queue.Empty:
                    continue
                writing = writing or isinstance(ev, TokenEvent)
                if isinstance(ev, TokenEvent):
                    yield pb.SummaryEvent(token=ev.text)
                elif isinstance(ev, FinalEvent):
                    yield pb.SummaryEvent(final=summary_pb(ev.summary))
                    return
                elif isinstance(ev, FailedEvent):
                    raise SummaryFailed(f"summary of document {doc_id} failed: {ev.reason}")
        finally:
            self._hub.unsubscribe(doc_id, q)
            if following:
                with self._followers_lock:
                    self._followers -= 1
