"""The client's only way to the daemon: the generated gRPC stubs, over the local unix socket
(identity from the kernel, via the ticket socket) or TCP with mutual TLS. No Qt here."""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
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
    exam: str = ""
    modality: str = ""
    priority: str = ""
    patient: str = ""  # the surrogate name, as the de-identified report writes it
    critical: bool = False


# The daemon restarted or is not up yet: the channel (and, on the unix socket, its ticket) is
# made anew on the next call.
RECONNECT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED})


class Unavailable(grpc.RpcError):
    """The daemon's sockets are there but nobody answers (it is stopped or restarting)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self._why = why

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return self._why


class Session:
    """A connection that outlives the daemon: made lazily, and made again (a fresh channel and a
    fresh ticket) after the daemon restarts, so a client started while the daemon is down, or
    left open across a restart, recovers by itself."""

    def __init__(self, connect: Callable[[], grpc.Channel]) -> None:
        self._connect = connect
        self._channel: grpc.Channel | None = None
        self._stub: pb_grpc.ApplianceStub | None = None
        self.actor, self.roles, self.local = "", frozenset[str](), False
        self._lock = threading.Lock()
        with contextlib.suppress(grpc.RpcError):
            self.stub  # noqa: B018 (connects now when it can, to know the person's roles)

    @property
    def stub(self) -> pb_grpc.ApplianceStub:
        with self._lock:
            if self._stub is None:
                try:
                    channel = self._connect()
                except OSError as e:  # the ticket socket refused: the daemon is not running
                    raise Unavailable(f"the appliance is not answering ({e.strerror or e})") from None
                stub = pb_grpc.ApplianceStub(channel)
                try:
                    me = stub.WhoAmI(pb.WhoAmIRequest(), timeout=5)
                except grpc.RpcError:
                    channel.close()
                    raise
                self._channel, self._stub = channel, stub
                self.actor, self.roles, self.local = me.actor, frozenset(me.roles), me.local
            return self._stub

    @property
    def connected(self) -> bool:
        return self._stub is not None

    def lost(self, error: grpc.RpcError) -> None:
        """After a call failed: forget the channel where the daemon went away, so the next call
        connects again."""
        if error.code() in RECONNECT_CODES:
            with self._lock:
                if self._channel is not None:
                    self._channel.close()
                self._channel = self._stub = None

    @classmethod
    def unix(cls, socket_path: Path) -> Session:
        return cls(lambda: ticketed(grpc.insecure_channel(f"unix:{socket_path}"), socket_path))

    @classmethod
    def tls(cls, target: str, ca: Path, cert: Path, key: Path) -> Session:
        creds = grpc.ssl_channel_credentials(ca.read_bytes(), key.read_bytes(), cert.read_bytes())
        return cls(lambda: grpc.secure_channel(target, creds))

    @property
    def may_reidentify(self) -> bool:
        return "clinician" in self.roles and self.local

    def worklist(self, limit: int = 200) -> list[Row]:
        docs = self.stub.ListDocuments(pb.ListDocumentsRequest(limit=limit), timeout=10).documents
        return [Row(d.id, d.kind, d.source, d.received_unix_ms, pb.DocumentStatus.Name(d.status), d.result_status,
                    d.exam, d.modality, d.priority, d.patient_surrogate, d.critical) for d in docs]

    def document(self, doc_id: str) -> pb.Document:
        doc: pb.Document = self.stub.GetDocument(pb.GetDocumentRequest(document_id=doc_id), timeout=10)
        return doc

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

    def reidentify(self, doc_id: str, purpose: str, reason: str = "") -> pb.ReidentifyResponse:
        r: pb.ReidentifyResponse = self.stub.Reidentify(
            pb.ReidentifyRequest(document_id=doc_id, purpose=pb.Purpose.Value(purpose), reason=reason), timeout=30)
        return r

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
