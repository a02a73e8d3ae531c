"""Does a kept MLLP library hold the intake's bounds? The appliance's own framing (api/mllp.py)
against python-hl7's asyncio MLLP server (hl7.mllp, the peer in bench/hl7_peer_server.py), both
in this process on loopback with the same 1 MiB frame limit, driven by the same hostile senders:

- oversize: one frame twice the limit; does the sender hear why, and is the frame kept for the
  operator (a dead letter)?
- trickle: a frame begun, then one byte every 0.25 s; how long until the server lets go?
- budget: 16 connections each holding 0.9 MiB of an unfinished frame; how many does the server
  hold at once (the appliance's mllp.max_buffered_bytes is 4 MiB here)?
- fs_only: a frame ended with <FS> alone, as some engines send; is it acknowledged?

The last line is one JSON object with both servers' figures. Usage: python bench/mllp_bounds.py"""
from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from hl7.mllp import start_hl7_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from appliance.api.mllp import MllpServer  # noqa: E402
from appliance.config import MllpConfig  # noqa: E402
from appliance.services.intake import IntakeService  # noqa: E402
from appliance.store import open_store  # noqa: E402

LIMIT = 1 << 20
VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"
ADT = (b"MSH|^~\\&|HIS|GH|APP|GH|20261207120000||ADT^A01|B-1|P|2.5\rEVN|A01|20261207120000\r"
       b"PID|1||MRN1^^^GH^MR||ROE^RAY||19700101|M\r")


class Hl7Peer:
    """python-hl7's server on its own loop, ACKing each message (stores nothing)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.errors: list[str] = []
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _handle(self, reader, writer) -> None:  # type: ignore[no-untyped-def]
        try:
            while not writer.is_closing():
                message = await reader.readmessage()
                writer.writemessage(message.create_ack())
                await writer.drain()
        except Exception as e:  # noqa: BLE001 (what the library raises is the measurement)
            self.errors.append(type(e).__name__)
        finally:
            writer.close()

    async def _start(self) -> int:
        self.server = await start_hl7_server(self._handle, host="127.0.0.1", port=0, limit=LIMIT)
        return int(self.server.sockets[0].getsockname()[1])


def _answer(sock: socket.socket, wait: float) -> tuple[bytes, bool]:
    """(bytes the server sent within `wait`, whether it closed the connection)."""
    sock.settimeout(wait)
    got = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return got, True
            got += chunk
    except TimeoutError:
        return got, False
    except OSError:
        return got, True


def oversize(port: int) -> dict[str, object]:
    with socket.create_connection(("127.0.0.1", port)) as s:
        with contextlib.suppress(OSError):  # the server may close while the frame is still going out
            s.sendall(VT + ADT + b"OBX|1|TX|||" + b"A" * (2 * LIMIT) + b"\r" + FS + CR)
        got, closed = _answer(s, 5)
    return {"answered": b"MSA|" in got, "reason_given": b"max_frame_bytes" in got, "closed": closed}


def trickle(port: int, cap: float = 10.0) -> float | None:
    """Seconds until the server closed a frame sent a byte every 0.25 s (None: held past cap)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        start = time.monotonic()
        try:
            s.sendall(VT)
            while time.monotonic() - start < cap:
                s.sendall(b"x")
                time.sleep(0.25)
                s.settimeout(0.01)
                try:
                    if s.recv(65536) == b"":
                        return round(time.monotonic() - start, 1)
                except TimeoutError:
                    pass
        except OSError:
            return round(time.monotonic() - start, 1)
    return None


def budget(port: int, n: int = 16) -> int:
    """How many of n connections, each holding 0.9 MiB of an unfinished frame, are still held."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        with contextlib.suppress(OSError):
            s.sendall(VT + b"x" * int(0.9 * LIMIT))
        socks.append(s)
    time.sleep(1.0)
    held = 0
    for s in socks:
        got, closed = _answer(s, 0.2)
        held += not closed
        s.close()
    return held


def fs_only(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(VT + ADT.replace(b"B-1", b"B-FS") + FS)
        got, _closed = _answer(s, 3)
    return b"MSA|AA" in got or b"MSA|CA" in got


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    (tmp / "k").write_text("ab" * 32)
    (tmp / "k").chmod(0o600)
    store = open_store(tmp / "a.db", tmp / "k")
    ours = MllpServer(MllpConfig(port=0, max_frame_bytes=LIMIT, frame_timeout_s=3, idle_timeout_s=30,
                                 max_buffered_bytes=4 * LIMIT, max_connections=32, max_connections_per_peer=32,
                                 allowed_peers=("127.0.0.0/8",)), IntakeService(store, b"s" * 32))
    ours.start()
    peer = Hl7Peer()
    out: dict[str, dict[str, object]] = {}
    for name, port in (("appliance", ours.port), ("python_hl7", peer.port)):
        letters_before = len(store.list_dead_letters(1000))
        figures: dict[str, object] = {"oversize": oversize(port)}
        if name == "appliance":
            figures["oversize"]["dead_letter_kept"] = len(store.list_dead_letters(1000)) > letters_before  # type: ignore[index]
        else:
            figures["oversize"]["dead_letter_kept"] = False  # type: ignore[index]  # it keeps nothing
        figures["trickle_closed_after_s"] = trickle(port)
        figures["unfinished_frames_held_of_16"] = budget(port)
        figures["fs_only_acknowledged"] = fs_only(port)
        out[name] = figures
        print(name, figures, flush=True)
    out["python_hl7"]["errors_raised"] = sorted(set(peer.errors))
    out["limit_bytes"] = {"frame": LIMIT, "appliance_buffered_total": 4 * LIMIT}  # type: ignore[assignment]
    ours.stop()
    store.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
