"""The DICOM listener: a Storage SCP for structured reports, and Verification (C-ECHO).

The upper layer protocol (PS3.8) and the two DIMSE services the appliance needs (PS3.7
C-ECHO, C-STORE) are small enough to speak directly. Associations are accepted only when
addressed to dicom.ae_title; presentation contexts only for Verification and the SR storage
classes, in Implicit or Explicit VR Little Endian, so a PACS routing images here is told at
negotiation, not after sending them. A C-STORE is answered Success only after the report is
committed; a report that cannot be accepted is kept as a dead letter and answered with a
failure status whose Error Comment says why.

Why not pynetdicom, the field's library: measured (bench/dicom_upper_layer.py, pynetdicom 3.0.4
with its timeouts set), it cannot enforce the bounds an appliance facing untrusted peers needs.
A declared PDU length of 2 GB, a huge A-RELEASE and an endless command set are held open until
its network timeout instead of aborted (3 of 7 abuse cases aborted at once, against 7 of 7 here),
a PDV on an unknown context closes the socket without an A-ABORT, and a C-STORE whose dataset never
ends is buffered without limit (+200 MB resident for 200 MB sent; here the association is aborted
at dicom.max_dataset_bytes, +61 MB). Its chunked-to-disk mode, the only other way, writes
unencrypted temporary files. So the two services needed are spoken directly, with those bounds."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID

from ..config import DicomConfig
from ..errors import InvalidMessage
from ..ingest.dicom.encapsulated import ENCAPSULATED_CLASSES
from ..ingest.dicom.read import SR_CLASSES
from ..services.intake import IntakeService
from .listener import TcpListener
from .peers import PeerFilter, server_tls

log = logging.getLogger(__name__)

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
TRANSFER_SYNTAXES = (EXPLICIT_LE, IMPLICIT_LE)
ABSTRACT_SYNTAXES = {VERIFICATION, *SR_CLASSES, *ENCAPSULATED_CLASSES}
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.10.1234.1"  # identifies this implementation, not an instance
IMPLEMENTATION_VERSION = "APPLIANCE_1"

# DIMSE command fields and statuses used here (PS3.7 9.3, annex C)
C_STORE_RQ, C_STORE_RSP, C_ECHO_RQ, C_ECHO_RSP = 0x0001, 0x8001, 0x0030, 0x8030
NO_DATASET = 0x0101
SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000
UNRECOGNIZED_OPERATION = 0x0211
SOP_CLASS_NOT_SUPPORTED = 0x0122
_MAX_COMMAND = 64 * 1024  # a command set is a few hundred bytes; more is abuse


class ProtocolError(Exception):
    """The peer broke the upper layer protocol: the association is aborted."""


# -- encoding ---------------------------------------------------------------------------------
def _uid(value: str) -> bytes:
    b = value.encode("ascii")
    return b + b"\0" if len(b) % 2 else b


def _item(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(payload)) + payload


def _pdu(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BBI", kind, 0, len(payload)) + payload


def encode_command(elements: list[tuple[int, bytes]]) -> bytes:
    """Group 0000 in Implicit VR Little Endian, with its group length first."""
    body = b"".join(struct.pack("<HHI", 0, elem, len(v)) + v for elem, v in sorted(elements))
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def decode_command(data: bytes) -> dict[int, bytes]:
    out, pos = {}, 0
    while pos + 8 <= len(data):
        group, elem, length = struct.unpack_from("<HHI", data, pos)
        pos += 8
        if group != 0 or pos + length > len(data):
            raise ProtocolError("malformed DIMSE command set")
        out[elem] = data[pos:pos + length]
        pos += length
    return out


def _us(v: int) -> bytes:
    return struct.pack("<H", v)


def _text(cmd: dict[int, bytes], elem: int) -> str:
    return cmd.get(elem, b"").rstrip(b"\0 ").decode("ascii", "replace")


def _int(cmd: dict[int, bytes], elem: int) -> int:
    v = cmd.get(elem, b"")
    return struct.unpack("<H", v[:2])[0] if len(v) >= 2 else -1


def _comment(reason: str) -> bytes:
    b = reason.encode("ascii", "replace")[:64]  # Error Comment is LO: 64 characters
    return b + b" " if len(b) % 2 else b


@dataclass
class Association:
    called: str = ""
    calling: str = ""
    max_send: int = 0  # the peer's maximum PDU length; 0 means unlimited
    contexts: dict[int, tuple[str, str]] = field(default_factory=dict)  # accepted id -> (abstract, transfer)


def parse_associate_rq(payload: bytes) -> tuple[Association, list[tuple[int, str, list[str]]], str]:
    """-> association, proposed contexts (id, abstract syntax, transfer syntaxes), application context."""
    if len(payload) < 68:
        raise ProtocolError("A-ASSOCIATE-RQ shorter than its fixed fields")
    a = Association(called=payload[4:20].decode("ascii", "replace").strip(),
                    calling=payload[20:36].decode("ascii", "replace").strip())
    proposed: list[tuple[int, str, list[str]]] = []
    app_context = ""
    pos = 68
    while pos + 4 <= len(payload):
        kind, _, length = struct.unpack_from(">BBH", payload, pos)
        body = payload[pos + 4:pos + 4 + length]
        pos += 4 + length
        if kind == 0x10:
            app_context = body.rstrip(b"\0 ").decode("ascii", "replace")
        elif kind == 0x20 and length >= 4:
            pc_id, abstract, transfers, sub = body[0], "", [], 4
            while sub + 4 <= len(body):
                skind, _, slen = struct.unpack_from(">BBH", body, sub)
                value = body[sub + 4:sub + 4 + slen].rstrip(b"\0 ").decode("ascii", "replace")
                sub += 4 + slen
                if skind == 0x30:
                    abstract = value
                elif skind == 0x40:
                    transfers.append(value)
            proposed.append((pc_id, abstract, transfers))
        elif kind == 0x50:
            sub = 0
            while sub + 4 <= len(body):
                skind, _, slen = struct.unpack_from(">BBH", body, sub)
                if skind == 0x51 and slen == 4:
                    a.max_send = struct.unpack_from(">I", body, sub + 4)[0]
                sub += 4 + slen
    return a, proposed, app_context


def associate_ac(rq_fixed: bytes, results: list[tuple[int, int, str]], max_receive: int) -> bytes:
    items = _item(0x10, APPLICATION_CONTEXT.encode())
    for pc_id, result, ts in results:
        items += _item(0x21, bytes([pc_id, 0, result, 0]) + _item(0x40, ts.encode()))
    user = (_item(0x51, struct.pack(">I", max_receive)) + _item(0x52, IMPLEMENTATION_UID.encode())
            + _item(0x55, IMPLEMENTATION_VERSION.encode()))
    items += _item(0x50, user)
    return _pdu(0x02, struct.pack(">HH", 1, 0) + rq_fixed[4:68] + items)


def associate_rj(source: int, reason: int) -> bytes:
    return _pdu(0x03, bytes([0, 1, source, reason]))


def abort() -> bytes:
    return _pdu(0x07, bytes(4))


def p_data(pc_id: int, data: bytes, command: bool, max_send: int) -> bytes:
    """One or more P-DATA-TF PDUs carrying `data`, fragmented to the peer's maximum."""
    room = (max_send or 1 << 20) - 6  # each PDV item costs 6 bytes of header
    chunks = [data[i:i + room] for i in range(0, len(data), room)] or [b""]
    out = b""
    for i, chunk in enumerate(chunks):
        header = (1 if command else 0) | (2 if i == len(chunks) - 1 else 0)
        pdv = struct.pack(">IBB", len(chunk) + 2, pc_id, header) + chunk
        out += _pdu(0x04, pdv)
    return out


def part10(dataset: bytes, sop_class: str, sop_instance: str, transfer_syntax: str) -> bytes:
    """The received dataset as a DICOM file: what is stored, and what a resubmit reads."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = UID(IMPLEMENTATION_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    buf = BytesIO()
    buf.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buf, meta, enforce_standard=True)  # type: ignore[arg-type]  # pydicom takes any binary file
    return buf.getvalue() + dataset


def tls_context(cfg: DicomConfig, state_dir: Path | None) -> ssl.SSLContext | None:
    return server_tls(cfg.tls_cert_file, cfg.tls_key_file, cfg.tls_client_ca_file, state_dir, "dicom")


def _pdvs(payload: bytes, assoc: Association) -> Iterator[tuple[int, int, bytes]]:
    """The PDV items of a P-DATA-TF: (presentation context, message control header, fragment)."""
    pos = 0
    while pos + 6 <= len(payload):
        length, pc_id, header = struct.unpack_from(">IBB", payload, pos)
        if length < 2 or pos + 4 + length > len(payload):
            raise ProtocolError("malformed PDV item")
        fragment = payload[pos + 6:pos + 4 + length]
        pos += 4 + length
        if pc_id not in assoc.contexts:
            raise ProtocolError(f"PDV on presentation context {pc_id}, which was not accepted")
        yield pc_id, header, fragment


# -- the server -------------------------------------------------------------------------------
class DicomServer(TcpListener):
    def __init__(self, cfg: DicomConfig, intake: IntakeService, state_dir: Path | None = None,
                 sock: socket.socket | None = None) -> None:
        super().__init__("DICOM", cfg.host, cfg.port, "dicom.port", ssl=tls_context(cfg, state_dir), sock=sock,
                         peers=PeerFilter(cfg.allowed_peers, "dicom.allowed_peers"))
        self._cfg = cfg
        self.max_connections = cfg.max_associations
        self.max_per_peer = cfg.max_associations_per_peer
        self._intake = intake
        self.associations = 0
        self.stored = 0

    def start(self) -> int:
        super().start()
        log.info("DICOM listening on %s:%d as AE %s", self._cfg.host, self.port, self._cfg.ae_title)
        return self.port

    async def _read_pdu(self, reader: asyncio.StreamReader, first: bool = False) -> tuple[int, bytes]:
        """One PDU, within the ARTIM timeout for the association request, else the idle timeout."""
        wait = self._cfg.artim_timeout_s if first else self._cfg.idle_timeout_s
        try:
            return await asyncio.wait_for(self._read_pdu_now(reader), wait)
        except TimeoutError:
            self.timed_out += 1
            raise ProtocolError(f"no complete PDU within {wait} s "
                                f"({'dicom.artim_timeout_s' if first else 'dicom.idle_timeout_s'})") from None

    async def _read_pdu_now(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await reader.readexactly(6)
        kind, _, length = struct.unpack(">BBI", head)
        # P-DATA up to what we offered (some peers round up); everything else is small.
        limit = self._cfg.max_pdu_bytes + 64 * 1024 if kind == 0x04 else 64 * 1024
        if length > limit:
            raise ProtocolError(f"PDU type 0x{kind:02x} of {length} bytes is larger than allowed ({limit})")
        return kind, await reader.readexactly(length)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._admit(writer, "dicom.max_associations", "dicom.max_associations_per_peer"):
            return
        unfinished = bytearray()  # the dataset in transfer when the association ends, if any
        ended = "the peer closed the connection"
        try:
            await self._serve(reader, writer, unfinished)
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError):
            pass
        except ProtocolError as e:
            ended = f"aborted: {e}"
            log.warning("DICOM association aborted: %s", e)
            writer.write(abort())
        # one association's fault never stops the listener
        except Exception as e:  # noqa: BLE001
            ended = f"error: {type(e).__name__}"
            log.error("DICOM association error: %s", type(e).__name__)
            writer.write(abort())
        finally:
            if unfinished:
                await self._keep_unfinished(bytes(unfinished), ended)
            self._release(writer)
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                await writer.drain()
            writer.close()

    async def _keep_unfinished(self, dataset: bytes, ended: str) -> None:
        """A dataset cut off by an abort or a dropped connection was never answered, so the PACS
        may or may not resend it: it is kept as a dead letter (encrypted) and logged, so an
        operator can see that a study was cut off rather than find it missing."""
        reason = (f"association ended with a dataset unfinished ({len(dataset)} bytes received; {ended}); "
                  "nothing was stored or answered: ask the PACS to resend")
        prepared = self._intake.refuse(dataset, InvalidMessage(reason, hl7_error_code="100"), "dicom", None)
        try:
            result = await asyncio.wrap_future(self._intake.commit_async(prepared))
            log.warning("DICOM dataset unfinished at association end: %d bytes kept as dead letter %s",
                        len(dataset), result.dead_letter_id)
        # the listener outlives a store fault
        except Exception as e:  # noqa: BLE001
            log.error("DICOM unfinished dataset not kept: %s", type(e).__name__)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, dataset: bytearray) -> None:
        kind, payload = await self._read_pdu(reader, first=True)
        if kind != 0x01:
            raise ProtocolError(f"expected A-ASSOCIATE-RQ, got PDU type 0x{kind:02x}")
        assoc = self._negotiate(payload, writer)
        if assoc is None:
            return
        self.associations += 1
        command: bytearray = bytearray()
        pending: dict[int, bytes] | None = None
        pc_of_command = 0
        while True:
            kind, payload = await self._read_pdu(reader)
            if kind == 0x05:  # A-RELEASE-RQ
                writer.write(_pdu(0x06, bytes(4)))
                return
            if kind == 0x07:  # A-ABORT from the peer
                return
            if kind != 0x04:
                raise ProtocolError(f"unexpected PDU type 0x{kind:02x} during an association")
            for pc_id, header, fragment in _pdvs(payload, assoc):
                if header & 1:  # command
                    command += fragment
                    if len(command) > _MAX_COMMAND:
                        raise ProtocolError("DIMSE command set larger than 64 KiB")
                    if header & 2:
                        pending, pc_of_command = decode_command(bytes(command)), pc_id
                        command.clear()
                        if _int(pending, 0x0800) == NO_DATASET:
                            await self._dimse(writer, assoc, pc_id, pending, b"")
                            pending = None
                else:
                    if pending is None:
                        raise ProtocolError("dataset fragment before its command")
                    dataset += fragment
                    if len(dataset) > self._cfg.max_dataset_bytes:
                        raise ProtocolError("dataset larger than dicom.max_dataset_bytes")
                    if header & 2:
                        await self._dimse(writer, assoc, pc_of_command, pending, bytes(dataset))
                        pending = None
                        dataset.clear()

    def _negotiate(self, payload: bytes, writer: asyncio.StreamWriter) -> Association | None:
        assoc, proposed, app_context = parse_associate_rq(payload)
        if struct.unpack_from(">H", payload, 0)[0] & 1 == 0:
            writer.write(associate_rj(2, 2))  # protocol version not supported
            return None
        if app_context != APPLICATION_CONTEXT:
            writer.write(associate_rj(1, 2))
            log.warning("DICOM association rejected: application context not DICOM")
            return None
        if assoc.called != self._cfg.ae_title:
            writer.write(associate_rj(1, 7))  # called AE title not recognised
            log.warning("DICOM association rejected: called AE title is not dicom.ae_title (%s)", self._cfg.ae_title)
            return None
        if self._cfg.calling_ae_titles and assoc.calling not in self._cfg.calling_ae_titles:
            writer.write(associate_rj(1, 3))  # calling AE title not recognised
            log.warning("DICOM association rejected: calling AE title not in dicom.calling_ae_titles")
            return None
        results = []
        for pc_id, abstract, transfers in proposed:
            if abstract not in ABSTRACT_SYNTAXES:
                results.append((pc_id, 3, transfers[0] if transfers else IMPLICIT_LE))  # abstract syntax not supported
                continue
            ts = next((t for t in TRANSFER_SYNTAXES if t in transfers), "")
            if not ts:
                results.append((pc_id, 4, transfers[0] if transfers else IMPLICIT_LE))
                continue
            assoc.contexts[pc_id] = (abstract, ts)
            results.append((pc_id, 0, ts))
        writer.write(associate_ac(payload, results, self._cfg.max_pdu_bytes))
        log.info("DICOM association accepted: %d of %d presentation contexts", len(assoc.contexts), len(proposed))
        return assoc

    async def _dimse(self, writer: asyncio.StreamWriter, assoc: Association, pc_id: int,
                     cmd: dict[int, bytes], dataset: bytes) -> None:
        field_ = _int(cmd, 0x0100)
        message_id = _int(cmd, 0x0110)
        sop_class = _text(cmd, 0x0002)
        if field_ == C_ECHO_RQ:
            rsp = encode_command([(0x0002, _uid(sop_class)), (0x0100, _us(C_ECHO_RSP)), (0x0120, _us(message_id)),
                                  (0x0800, _us(NO_DATASET)), (0x0900, _us(SUCCESS))])
        elif field_ == C_STORE_RQ:
            instance = _text(cmd, 0x1000)
            if sop_class != assoc.contexts[pc_id][0]:
                # An image sent over the Verification (or another SR) context is not parsed at all.
                # The Error Comment holds 64 characters: the reason, not the UIDs.
                status, comment = SOP_CLASS_NOT_SUPPORTED, f"SOP class does not match presentation context {pc_id}"
            else:
                status, comment = await self._store(dataset, sop_class, instance, assoc.contexts[pc_id][1])
            elements = [(0x0002, _uid(sop_class)), (0x0100, _us(C_STORE_RSP)), (0x0120, _us(message_id)),
                        (0x0800, _us(NO_DATASET)), (0x0900, _us(status)), (0x1000, _uid(instance))]
            if comment:
                elements.append((0x0902, _comment(comment)))
            rsp = encode_command(elements)
        else:
            rsp = encode_command([(0x0100, _us(field_ | 0x8000)), (0x0120, _us(message_id)),
                                  (0x0800, _us(NO_DATASET)), (0x0900, _us(UNRECOGNIZED_OPERATION))])
        writer.write(p_data(pc_id, rsp, True, assoc.max_send))
        await writer.drain()

    async def _store(self, dataset: bytes, sop_class: str, instance: str, ts: str) -> tuple[int, str]:
        raw = part10(dataset, sop_class, instance, ts)
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(None, lambda: self._intake.prepare_dicom(
            raw, transport="dicom", deid_now=False))
        result = await asyncio.wrap_future(self._intake.commit_async(prepared))
        if result.ok:
            self.stored += 1
            return SUCCESS, ""
        if result.outcome == "ERROR" and result.dead_letter_id == "":
            return OUT_OF_RESOURCES, result.reason  # disk full, database busy: the PACS retries
        return CANNOT_UNDERSTAND, result.reason
