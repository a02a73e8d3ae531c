"""The MLLP listener (HL7 v2 over TCP): persistent connections, many messages each.

Framing: <VT> message <FS><CR>. Each message is prepared on the event loop, committed by
the group-commit writer, and only then acknowledged. A connection that sends data outside a
frame, or a frame larger than mllp.max_frame_bytes, gets an AR naming the problem and is
closed; other connections carry on.

The framing is the appliance's own, not python-hl7's asyncio MLLP (hl7.mllp 0.4.5), because
that library cannot hold the intake's bounds, measured by bench/mllp_bounds.py (same 1 MiB frame
limit, same senders): a frame over the limit is dropped with no answer and nothing kept (here: an
AR naming mllp.max_frame_bytes and a dead letter); a frame trickled a byte every 0.25 s was still
held after 10 s (here: closed at frame_timeout_s); 16 connections holding 0.9 MiB unfinished
frames were all held (here: 2, within mllp.max_buffered_bytes)."""
from __future__ import annotations

import asyncio
import functools
import logging
import socket
from pathlib import Path

from ..config import MllpConfig
from ..errors import InvalidMessage
from ..services.intake import IntakeService
from .listener import TcpListener
from .peers import PeerFilter, server_tls

log = logging.getLogger(__name__)
VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"


# A message up to this size is prepared on the event loop (microseconds, no thread hop); a larger
# one, or a batch, in the executor.
_ON_LOOP_BYTES = 64 * 1024


def frame(payload: bytes) -> bytes:
    return VT + payload + FS + CR


class MllpServer(TcpListener):
    def __init__(self, cfg: MllpConfig, intake: IntakeService, sock: socket.socket | None = None,
                 state_dir: Path | None = None) -> None:
        # MLLP over TLS (the IHE ATNA secure node profile interface engines implement): with a
        # client CA, only a sender holding a certificate it signed can submit, whoever else can
        # reach the port (every local account reaches loopback).
        tls = server_tls(cfg.tls_cert_file, cfg.tls_key_file, cfg.tls_client_ca_file, state_dir, "mllp")
        super().__init__("MLLP", cfg.host, cfg.port, "mllp.port", ssl=tls, sock=sock,
                         peers=PeerFilter(cfg.allowed_peers, "mllp.allowed_peers"))
        self.tls = tls is not None
        self._cfg = cfg
        self._intake = intake
        self.connections = 0
        self.max_connections = cfg.max_connections
        self.max_per_peer = cfg.max_connections_per_peer
        self.buffered = 0  # bytes of unfinished frames held by all connections (event loop only)

    def start(self) -> int:
        super().start()
        log.info("MLLP listening on %s:%d (%s; peers: %s)", self._cfg.host, self.port,
                 "TLS, client certificate required" if self._cfg.tls_client_ca_file
                 else "TLS" if self.tls else "plain TCP",
                 ", ".join(self._cfg.allowed_peers)
                 or "none (mllp.allowed_peers is empty: every connection is refused)")
        return self.port

    async def _refuse(self, writer: asyncio.StreamWriter, raw: bytes, reason: str, ack_code: str = "AR") -> None:
        """Answer a framing error with an AR (AE: resend later), keep the bytes as a dead letter
        (the whole frame as far as the cap), close."""
        err = InvalidMessage(reason, hl7_error_code="100" if ack_code == "AR" else "207", ack_code=ack_code)
        prepared = self._intake.refuse(raw, err, "mllp", None)
        result = await asyncio.wrap_future(self._intake.commit_async(prepared))
        for ack in result.acks:
            writer.write(frame(ack))
        await writer.drain()
        # A framing reason is the appliance's own words (sizes, bytes seen), never the message's.
        log.warning("MLLP connection closed: %s (dead letter %s)", reason.split(";")[0], result.dead_letter_id)

    async def _read(self, reader: asyncio.StreamReader, wait: float, in_frame: bool) -> bytes:
        """The next bytes, or b"" when the peer closed or `wait` passed (counted and logged)."""
        try:
            async with asyncio.timeout(wait):  # cheaper than wait_for: no task per read
                return await reader.read(1 << 16)
        except TimeoutError:
            self.timed_out += 1
            log.info("MLLP connection closed: %s (%s)", "frame unfinished" if in_frame else "idle",
                     f"mllp.frame_timeout_s = {self._cfg.frame_timeout_s}" if in_frame
                     else f"mllp.idle_timeout_s = {self._cfg.idle_timeout_s}")
            return b""

    async def _deliver(self, writer: asyncio.StreamWriter, payload: bytes) -> bool:
        """One whole frame: committed, then acknowledged (each message of a batch in order).
        False when the frame was refused and the connection is to close."""
        messages = payload.count(b"\rMSH") + payload.count(b"\nMSH") + payload.startswith(b"MSH")
        if messages > self._cfg.max_messages_per_frame:
            await self._refuse(writer, payload, f"MLLP frame holds {messages} messages; at most "
                               f"mllp.max_messages_per_frame ({self._cfg.max_messages_per_frame}): "
                               "send one message per frame")
            return False
        if len(payload) > _ON_LOOP_BYTES or messages > 1:
            # A large message or a batch is parsed and de-identified off the event loop, so one
            # sender's 100,000 segments do not hold every other sender's ACK.
            futures = await asyncio.get_running_loop().run_in_executor(None, functools.partial(
                self._intake.submit_async, payload, transport="mllp", deid_now=False))
        else:
            futures = self._intake.submit_async(payload, transport="mllp", deid_now=False)
        for fut in futures:
            result = await asyncio.wrap_future(fut)
            for ack in result.acks:
                writer.write(frame(ack))
        await writer.drain()
        return True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if not self._admit(writer, "mllp.max_connections", "mllp.max_connections_per_peer"):
            return
        self.connections += 1
        log.info("MLLP connection from %s", peer[0] if peer else "?")
        buf = bytearray()
        held = 0  # len(buf) as last counted in self.buffered
        limit = self._cfg.max_frame_bytes
        loop = asyncio.get_running_loop()
        frame_deadline = 0.0  # when the frame in progress must be complete
        try:
            while True:
                # Silent between frames: idle. Inside a frame the whole frame has frame_timeout_s,
                # however the bytes trickle in (a byte a second once kept a slot for ever).
                wait = max(0.0, frame_deadline - loop.time()) if buf else float(self._cfg.idle_timeout_s)
                data = await self._read(reader, wait, in_frame=bool(buf))
                if not data:
                    break
                if not buf:
                    frame_deadline = loop.time() + self._cfg.frame_timeout_s
                buf += data
                self.buffered += len(buf) - held
                held = len(buf)
                if self.buffered > self._cfg.max_buffered_bytes and buf.find(FS) < 0:
                    # An unfinished frame is no message: its dead letter keeps the start (to tell
                    # the sender), not megabytes per refusal, which would fill the disk instead.
                    await self._refuse(writer, bytes(buf[:64 * 1024]),
                                       f"the appliance holds mllp.max_buffered_bytes ({self._cfg.max_buffered_bytes}) "
                                       "of unfinished frames from all senders; resend later", ack_code="AE")
                    return
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
                    self.buffered -= held - len(buf)
                    held = len(buf)
                    frame_deadline = loop.time() + self._cfg.frame_timeout_s  # the next frame's own time
                    if not await self._deliver(writer, payload):
                        return
        except (ConnectionResetError, BrokenPipeError):
            pass
        # one connection's fault never stops the listener
        except Exception as e:  # noqa: BLE001
            log.error("MLLP connection error: %s", type(e).__name__)
        finally:
            self.buffered -= held
            self._release(writer)
            writer.close()
