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
