"""A deliberately minimal DICOM upper-layer client for protocol-abuse tests: it sends what a
broken or hostile peer would. Well-behaved traffic in the tests comes from dcmtk."""
from __future__ import annotations

import socket
import struct

VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"


def _item(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(payload)) + payload


def associate_rq(called: str, calling: str = "TESTSCU", abstract: str = VERIFICATION) -> bytes:
    body = struct.pack(">HH", 1, 0) + called.ljust(16).encode() + calling.ljust(16).encode() + bytes(32)
    body += _item(0x10, b"1.2.840.10008.3.1.1.1")
    body += _item(0x20, bytes([1, 0, 0, 0]) + _item(0x30, abstract.encode()) + _item(0x40, IMPLICIT_LE.encode()))
    body += _item(0x50, _item(0x51, struct.pack(">I", 16384)))
    return struct.pack(">BBI", 1, 0, len(body)) + body


def pdu(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BBI", kind, 0, len(payload)) + payload


def read_pdu(sock: socket.socket) -> tuple[int, bytes]:
    head = _exact(sock, 6)
    kind, _, length = struct.unpack(">BBI", head)
    return kind, _exact(sock, length)


def _exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def abuse_cases() -> dict[str, bytes]:
    """What a broken or hostile peer sends once associated: each must get an A-ABORT at once.
    The tests send them to the appliance; bench/dicom_upper_layer.py to pynetdicom as well."""
    return {
        "pdv_on_unknown_context": pdu(0x04, struct.pack(">IBB", 4, 99, 3) + b"xx"),
        "dataset_before_command": pdu(0x04, struct.pack(">IBB", 4, 1, 2) + b"xx"),
        "huge_pdu": struct.pack(">BBI", 0x04, 0, 0x7FFFFFFF),
        "truncated_pdv": pdu(0x04, struct.pack(">IBB", 400, 1, 3) + b"xx"),
        "second_associate": associate_rq("APPLIANCE"),
        "huge_release": struct.pack(">BBI", 0x05, 0, 0x7FFFFFFF),
        "endless_command": b"".join(pdu(0x04, struct.pack(">IBB", 16002, 1, 1) + bytes(16000)) for _ in range(5)),
    }
