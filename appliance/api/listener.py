"""A TCP listener on its own asyncio loop and thread, shared by the MLLP and DICOM servers:
bind (a busy port names its config key), track connections, stop by closing them all."""
from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections import Counter

from .peers import PeerFilter

log = logging.getLogger(__name__)


class TcpListener:
    def __init__(self, protocol: str, host: str, port: int, config_key: str, ssl: object = None,
                 sock: socket.socket | None = None, peers: PeerFilter | None = None) -> None:
        self._peers_allowed = peers  # None: any address (tests of the framing alone)
        self._ssl = ssl  # an ssl.SSLContext: TLS on this port (DICOM's, PS3.15 Annex B)
        self._sock = sock  # a listening socket systemd passed (socket activation), else bind host:port
        self._protocol, self._host, self._port, self._config_key = protocol, host, port, config_key
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name=protocol.lower(), daemon=True)
        self._conns: set[asyncio.StreamWriter] = set()
        self._peers: Counter[str] = Counter()  # open connections per peer address
        self._peer_of: dict[asyncio.StreamWriter, str] = {}
        self.port = 0
        self.max_connections = 1 << 30
        self.max_per_peer = 1 << 30
        self.refused_connections = 0  # over max_connections or a peer's share
        self.timed_out = 0  # closed by an idle or frame timeout

    def start(self) -> int:
        self._thread.start()
        try:
            self.port = asyncio.run_coroutine_threadsafe(self._bind(), self._loop).result(10)
        except BaseException:
            self.stop()  # the loop's thread and its descriptors go with the failed bind
            raise
        return self.port

    async def _bind(self) -> int:
        try:
            tls = {"ssl": self._ssl, "ssl_handshake_timeout": 30 if self._ssl else None}
            if self._sock is not None:
                self._server = await asyncio.start_server(self._handle, sock=self._sock, **tls)  # type: ignore[arg-type]
            else:
                self._server = await asyncio.start_server(self._handle, self._host, self._port, reuse_address=True,
                                                          **tls)  # type: ignore[arg-type]
        except OSError as e:
            raise OSError(f"cannot bind {self._protocol} to {self._host}:{self._port} (config key {self._config_key}): "
                          f"{e.strerror}") from None
        return int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def _admit(self, writer: asyncio.StreamWriter, key: str, peer_key: str = "") -> bool:
        """Bounded connections: one over the limit, or over its peer's share, is closed at once
        (the peer retries later); the share keeps one sender from taking every slot."""
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) and peername else "local"
        allowed = self._peers_allowed
        if allowed is not None and not allowed.admits(peer):
            allowed.refused += 1
            self.refused_connections += 1
            # An address is the sending system's, never a patient's: it may be logged.
            log.warning("%s connection refused: %s is not in %s", self._protocol, peer, allowed.key)
            writer.close()
            return False
        if len(self._conns) >= self.max_connections:
            self.refused_connections += 1
            log.warning("%s connection refused: %d open, the limit (%s)", self._protocol, len(self._conns), key)
            writer.close()
            return False
        if self._peers[peer] >= self.max_per_peer:
            self.refused_connections += 1
            log.warning("%s connection refused: %s has %d open, its share (%s)", self._protocol, peer,
                        self._peers[peer], peer_key)
            writer.close()
            return False
        self._conns.add(writer)
        self._peers[peer] += 1
        self._peer_of[writer] = peer
        return True

    def _release(self, writer: asyncio.StreamWriter) -> None:
        self._conns.discard(writer)
        peer = self._peer_of.pop(writer, None)
        if peer is not None:
            self._peers[peer] -= 1
            if self._peers[peer] <= 0:
                del self._peers[peer]

    def stop(self) -> None:
        """Stop accepting and close every connection; work already committed stays committed."""
        async def _stop() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._conns):
                w.close()
            await asyncio.sleep(0)
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()  # else its descriptors are closed at exit, noisily ("Exception ignored")
