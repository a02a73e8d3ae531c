"""The MLLP listener (HL7 v2 over TCP): persistent connections, many messages each.

Framing: <VT> message <FS><CR>. Each message is prepared on the event loop, committed by
the group-commit writer, and only then acknowledged. A connection that sends data outside a
frame, or a frame larger than mllp.max_frame_bytes, gets an AR naming the problem and is
closed; other connections carry on."""
from __future__ import annotations

import asyncio
import logging
import socket

from ..config import MllpConfig
from ..errors import InvalidMessage
from ..services.intake import IntakeService
from .listener import TcpListener

log = logging.getLogger(__name__)
VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"


def frame(payload: bytes) -> bytes:
    return VT + payload + FS + CR


class MllpServer(TcpListener):
    def __init__(self, cfg: MllpConfig, intake: IntakeService, sock: socket.socket | None = None) -> None:
        super().__init__("MLLP", cfg.host, cfg.port, "mllp.port", sock=sock)
        self._cfg = cfg
        self._intake = intake
        self.connections = 0
        self.max_connections = cfg.max_connections
        self.max_per_peer = cfg.max_connections_per_peer

    def start(self) -> int:
        super().start()
        log.info("MLLP listening on %s:%d", self._cfg.host, self.port)
        return self.port

    async def _refuse(self, writer: asyncio.StreamWriter, raw: bytes, reason: str) -> None:
        """Answer a framing error with an AR, keep the bytes as a dead letter, close."""
        err = InvalidMessage(reason, hl7_error_code="100")
        prepared = self._intake.refuse(raw[:1 << 20], err, "mllp", None)
        result = await asyncio.wrap_future(self._intake.commit_async(prepared))
        for ack in result.acks:
            writer.write(frame(ack))
        await writer.drain()
        # A framing reason is the appliance's own words (sizes, bytes seen), never the message's.
        log.warning("MLLP connection closed: %s (dead letter %s)", reason.split(";")[0], result.dead_letter_id)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if not self._admit(writer, "mllp.max_connections", "mllp.max_connections_per_peer"):
            return
        self.connections += 1
        log.info("MLLP connection from %s", peer[0] if peer else "?")
        buf = bytearray()
        limit = self._cfg.max_frame_bytes
        loop = asyncio.get_running_loop()
        frame_deadline = 0.0  # when the frame in progress must be complete
        try:
            while True:
                # Silent between frames: idle. Inside a frame the whole frame has frame_timeout_s,
                # however the bytes trickle in (a byte a second once kept a slot for ever).
                if buf:
                    wait = max(0.0, frame_deadline - loop.time())
                else:
                    wait = float(self._cfg.idle_timeout_s)
                try:
                    async with asyncio.timeout(wait):  # cheaper than wait_for: no task per read
                        data = await reader.read(1 << 16)
                except TimeoutError:
                    self.timed_out += 1
                    log.info("MLLP connection closed: %s (%s)", "frame unfinished" if buf else "idle",
                             f"mllp.frame_timeout_s = {self._cfg.frame_timeout_s}" if buf
                             else f"mllp.idle_timeout_s = {self._cfg.idle_timeout_s}")
                    break
                if not data:
                    break
                if not buf:
                    frame_deadline = loop.time() + self._cfg.frame_timeout_s
                buf += data
                while buf:
                    # Whitespace between frames is tolerated; anything else outside a frame is not.
                    stripped = buf.lstrip(b"\r\n\t ")
                    if len(stripped) != len(buf):
                        del buf[:len(buf) - len(stripped)]
                        if not buf:
                            break
                    if buf[:1] != VT:
                        await self._refuse(writer, bytes(buf), "data outside an MLLP frame (expected the 0x0B "
                                                               "start block); closing the connection")
                        return
                    end = buf.find(FS)
                    if (end < 0 and len(buf) > limit + 2) or end - 1 > limit:
                        # The dead letter keeps the frame as far as the cap (encrypted), for the
                        # operator to see what the sender sent; past it, nothing is read.
                        await self._refuse(writer, bytes(buf[:limit + 2]),
                                           f"MLLP frame larger than mllp.max_frame_bytes ({limit} bytes); "
                                           "closing the connection")
                        return
                    if end < 0 or end + 1 == len(buf):
                        break  # the frame, or its trailing CR, is still on its way
                    payload = bytes(buf[1:end])
                    cut = end + 2 if buf[end + 1:end + 2] == CR else end + 1
                    del buf[:cut]
                    frame_deadline = loop.time() + self._cfg.frame_timeout_s  # the next frame's own time
                    for fut in self._intake.submit_async(payload, transport="mllp", deid_now=False):
                        result = await asyncio.wrap_future(fut)
                        for ack in result.acks:
                            writer.write(frame(ack))
                    await writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            pass
        except Exception as e:  # one connection's fault never stops the listener
            log.error("MLLP connection error: %s", type(e).__name__)
        finally:
            self._release(writer)
            writer.close()
