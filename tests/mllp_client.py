"""A minimal blocking MLLP client for tests that must see each acknowledgement (the
third-party mllp_send prints ACKs but cannot be stopped between messages)."""
from __future__ import annotations

import socket
import threading
import time

VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"


class MllpClient:
    def __init__(self, port: int, timeout: float = 30.0, source: str = "") -> None:
        # `source`: another loopback address (127.0.0.2) plays a second peer.
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""

    def send(self, payload: bytes) -> None:
        self.sock.sendall(VT + payload + FS + CR)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self) -> bytes | None:
        while FS + CR not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        frame, _, self.buf = self.buf.partition(FS + CR)
        return frame.lstrip(VT)

    def request(self, payload: bytes) -> bytes | None:
        self.send(payload)
        return self.read_frame()

    def close(self) -> None:
        self.sock.close()


def msa(ack: bytes) -> list[str]:
    seg = next(s for s in ack.decode().split("\r") if s.startswith("MSA"))
    return seg.split("|")


def trickle(sock: socket.socket, stop: threading.Event, period: float) -> float | None:
    """A sender that opens a frame and then sends one byte every `period` seconds, as a hostile
    or broken peer would, until `stop` is set. Returns when the appliance closed the connection
    (time.monotonic()), or None if it never did."""
    try:
        sock.sendall(VT)
        while not stop.is_set():
            sock.sendall(b"x")
            time.sleep(period)
    except OSError:
        return time.monotonic()
    return None
