"""The client's only way to the daemon: the generated gRPC stubs, over the local unix socket
(identity from the kernel, via the ticket socket) or TCP with mutual TLS. No Qt here."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from ..api.transport import ticketed
from ..v1 import appliance_pb2 as pb
from ..v1 import appliance_pb2_grpc as pb_grpc


@dataclass(frozen=True)
class Row:
    id: str
    kind: str
    source: str
    received_ms: int
    status: str
    result_status: str


class Session:
    def __init__(self, channel: grpc.Channel) -> None:
        self._channel = channel
        self.stub = pb_grpc.ApplianceStub(channel)
        me = self.stub.WhoAmI(pb.WhoAmIRequest(), timeout=10)
        self.actor, self.roles, self.local = me.actor, frozenset(me.roles), me.local

    @classmethod
    def unix(cls, socket_path: Path) -> "Session":
        return cls(ticketed(grpc.insecure_channel(f"unix:{socket_path}"), socket_path))

    @classmethod
    def tls(cls, target: str, ca: Path, cert: Path, key: Path) -> "Session":
        creds = grpc.ssl_channel_credentials(ca.read_bytes(), key.read_bytes(), cert.read_bytes())
        return cls(grpc.secure_channel(target, creds))

    @property
    def may_reidentify(self) -> bool:
        return "clinician" in self.roles and self.local

    def worklist(self, limit: int = 200) -> list[Row]:
        docs = self.stub.ListDocuments(pb.ListDocumentsRequest(limit=limit), timeout=10).documents
        return [Row(d.id, d.kind, d.source, d.received_unix_ms, pb.DocumentStatus.Name(d.status), d.result_status)
                for d in docs]

    def document(self, doc_id: str) -> pb.Document:
        return self.stub.GetDocument(pb.GetDocumentRequest(document_id=doc_id), timeout=10)

    def stream_summary(self, doc_id: str, cancel: threading.Event) -> Iterator[pb.SummaryEvent]:
        """Each line of the summary once it has passed grounding, then the final summary. Setting `cancel` hangs up
        (the daemon stops a summary nobody waits for)."""
        call = self.stub.StreamSummary(pb.StreamSummaryRequest(document_id=doc_id), timeout=900)
        stopper = threading.Thread(target=lambda: (cancel.wait(), call.cancel()), daemon=True)
        stopper.start()
        try:
            yield from call
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                raise
        finally:
            cancel.set()

    def cancel_summary(self, doc_id: str) -> None:
        self.stub.CancelSummary(pb.CancelSummaryRequest(document_id=doc_id), timeout=10)

    def reidentify(self, doc_id: str, purpose: str) -> pb.ReidentifyResponse:
        return self.stub.Reidentify(pb.ReidentifyRequest(document_id=doc_id, purpose=pb.Purpose.Value(purpose)),
                                    timeout=30)

    def close(self) -> None:
        self._channel.close()
