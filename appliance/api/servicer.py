"""gRPC servicer: translation between protobuf and the plain services, nothing more."""
from __future__ import annotations

from typing import Any

import json
import logging

import grpc

from .access import actor, current
from ..errors import InvalidMessage, NotReady, PermissionDenied
from ..services.core import Core, DocumentRow, Queued, SummaryRow
from ..services.intake import IntakeResult
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


def _refusal(r: IntakeResult) -> Exception:
    """A fault that may pass (the store could not commit; nothing was kept) is UNAVAILABLE, which
    clients retry; a refusal the same input will always get is INVALID_ARGUMENT, kept as a dead letter."""
    if not r.dead_letter_id:
        return NotReady(f"{r.reason} (nothing was stored)")
    return InvalidMessage(f"{r.reason} (kept as dead letter {r.dead_letter_id})")


class ApplianceServicer(pb_grpc.ApplianceServicer):
    """Registered before the server starts (gRPC requires it); answers UNAVAILABLE until
    `attach` hands it the core, i.e. until the store is open and the model loaded. Each call is
    a translation: the request's fields to a use case of the core, its answer to protobuf."""

    def __init__(self) -> None:
        self._core: Core | None = None

    def attach(self, core: Core) -> None:
        self._core = core

    @property
    def followers_refused(self) -> int:
        return self._core.followers_refused if self._core is not None else 0

    def _ready(self) -> Core:
        if self._core is None:
            raise NotReady("appliance is starting (opening the store, loading the model); retry shortly")
        return self._core

    def SubmitHL7(self, request: pb.SubmitHL7Request, context: grpc.ServicerContext) -> pb.SubmitHL7Response:
        results = self._ready().submit_hl7(request.message, request.source)
        if len(results) == 1 and not results[0].ok:
            raise _refusal(results[0])
        # An ORU with several patients answers one result per document it became.
        return pb.SubmitHL7Response(results=[x for r in results for x in _results(r)])

    def SubmitDICOM(self, request: pb.SubmitDICOMRequest, context: grpc.ServicerContext) -> pb.SubmitResult:
        r = self._ready().submit_dicom(request.file, request.source)
        if not r.ok:
            raise _refusal(r)
        return _result(r)

    def GetDocument(self, request: pb.GetDocumentRequest, context: grpc.ServicerContext) -> pb.Document:
        return document_pb(self._ready().document(request.document_id))

    def ListDocuments(self, request: pb.ListDocumentsRequest, context: grpc.ServicerContext) -> Any:
        return pb.ListDocumentsResponse(documents=[document_pb(d) for d in self._ready().documents(request.limit)])

    def ListDeadLetters(self, request: pb.ListDeadLettersRequest, context: grpc.ServicerContext) -> Any:
        return pb.ListDeadLettersResponse(dead_letters=[
            pb.DeadLetter(id=r.id, reason=r.reason, transport=r.transport, received_unix_ms=r.received_ms,
                          size_bytes=len(r.raw)) for r in self._ready().dead_letters(request.limit)])

    def ResubmitDeadLetter(self, request: pb.ResubmitDeadLetterRequest,
                           context: grpc.ServicerContext) -> pb.SubmitHL7Response:
        results = self._ready().resubmit(request.dead_letter_id, request.corrected_message)
        # An ORU with several patients answers one result per document it became.
        return pb.SubmitHL7Response(results=[x for r in results for x in _results(r)])

    def Reidentify(self, request: pb.ReidentifyRequest, context: grpc.ServicerContext) -> pb.ReidentifyResponse:
        core = self._ready()
        self._local_only(core, "re-identification")
        purpose = pb.Purpose.Name(request.purpose) if request.purpose else ""
        r = core.reidentify(request.document_id, purpose, actor=actor(), reason=request.reason)
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

    def _local_only(self, core: Core, what: str) -> None:
        if not self._is_local():
            # Refused, and recorded with the person the certificate names: an administrator's
            # reviewer sees who tried an administrative call from the network.
            core.refused_remote(actor(), what)
            raise PermissionDenied(f"{what} is served only on the local unix socket (config key grpc.unix_socket)")

    def GetStatus(self, request: pb.GetStatusRequest, context: grpc.ServicerContext) -> pb.GetStatusResponse:
        core = self._ready()
        self._local_only(core, "status")
        return pb.GetStatusResponse(json=json.dumps(core.status(), sort_keys=True))

    def ErasePatient(self, request: pb.ErasePatientRequest, context: grpc.ServicerContext) -> pb.ErasePatientResponse:
        core = self._ready()
        self._local_only(core, "erasure")
        counts = core.erase(request.patient, actor(), request.dry_run)
        return pb.ErasePatientResponse(documents=counts["documents"], messages=counts["messages"],
                                       identities=counts["patients"])

    def Backup(self, request: pb.BackupRequest, context: grpc.ServicerContext) -> pb.BackupResponse:
        core = self._ready()
        self._local_only(core, "backup")
        out, key, documents = core.backup(request.name, actor())
        return pb.BackupResponse(path=str(out), key_hex=key, documents=documents)

    def CheckStore(self, request: pb.CheckStoreRequest, context: grpc.ServicerContext) -> pb.CheckStoreResponse:
        core = self._ready()
        self._local_only(core, "the store check")
        return pb.CheckStoreResponse(problems=core.check(request.quick))

    def VerifyAudit(self, request: pb.VerifyAuditRequest, context: grpc.ServicerContext) -> pb.VerifyAuditResponse:
        core = self._ready()
        self._local_only(core, "audit verification")
        ok, rows, problem = core.verify_audit()
        return pb.VerifyAuditResponse(ok=ok, rows=rows, problem=problem)

    def ExportAudit(self, request: pb.ExportAuditRequest, context: grpc.ServicerContext) -> Any:
        core = self._ready()
        self._local_only(core, "audit export")
        for row in core.export_audit(request.since_unix_ms):
            yield pb.AuditRow(json=json.dumps(row, sort_keys=True))

    def CancelSummary(self, request: pb.CancelSummaryRequest, context: grpc.ServicerContext) -> Any:
        return pb.CancelSummaryResponse(cancelled=self._ready().cancel_summary(request.document_id))

    def StreamSummary(self, request: pb.StreamSummaryRequest, context: grpc.ServicerContext) -> Any:
        core = self._ready()
        doc_id = request.document_id
        events = core.follow(doc_id, context.is_active,
                             on_follow=lambda: context.add_callback(lambda: core.follower_gone(doc_id)))
        for ev in events:
            if isinstance(ev, Queued):
                yield pb.SummaryEvent(queued=pb.QueuePosition(ahead=ev.ahead, estimate_s=ev.estimate_s))
            elif isinstance(ev, str):
                yield pb.SummaryEvent(token=ev)
            else:
                summary, stale = ev
                yield pb.SummaryEvent(final=summary_pb(summary, stale=stale))
