"""Prometheus text exposition (format 0.0.4) on loopback: GET /metrics. Counts, states and
timings only; nothing here ever carries report text, a name or an identifier."""
from __future__ import annotations

from typing import Any

import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..config import MetricsConfig
from ..services.status import Metric
from .peers import PeerFilter

log = logging.getLogger(__name__)


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(metrics: list[Metric]) -> str:
    out = []
    for m in metrics:
        out.append(f"# HELP {m.name} {m.help}")
        out.append(f"# TYPE {m.name} {m.kind}")
        for labels, value in m.samples:
            lab = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            number = repr(value) if value != int(value) else str(int(value))
            out.append(f"{m.name}{{{lab}}} {number}" if lab else f"{m.name} {number}")
    return "\n".join(out) + "\n"


class _Filtered(ThreadingHTTPServer):
    """Closes a connection from an address not in metrics.allowed_peers before reading a byte."""
    peers: PeerFilter

    def verify_request(self, request, client_address) -> bool:  # type: ignore[no-untyped-def]
        if self.peers.admits(str(client_address[0])):
            return True
        self.peers.refused += 1
        log.warning("metrics connection refused: %s is not in %s", client_address[0], self.peers.key)
        return False


class _Server(_Filtered):
    """On a listening socket systemd passed (socket activation). TCPServer would open an AF_INET
    socket of its own first, which the unit forbids (RestrictAddressFamilies=AF_UNIX)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], sock: socket.socket) -> None:
        host, port = sock.getsockname()[:2]
        socketserver.BaseServer.__init__(self, (host, port), handler)
        self.socket = sock
        self.server_name, self.server_port = host, port


class MetricsServer:
    def __init__(self, cfg: MetricsConfig, collect: Callable[[], list[Metric]],
                 sock: socket.socket | None = None) -> None:
        self._cfg = cfg
        collect_ = collect

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is served here")
                    return
                try:
                    body = render(collect_()).encode()
                # a scrape must never take the daemon down
                except Exception as e:  # noqa: BLE001
                    log.error("metrics collection failed: %s", type(e).__name__)
                    self.send_error(500, "metrics collection failed; see the daemon log")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args: Any) -> None:  # scrapes every few seconds: not worth a line
                pass

        try:
            self._httpd = _Server(Handler, sock) if sock is not None else _Filtered((cfg.host, cfg.port), Handler)
        except OSError as e:
            raise OSError(f"cannot bind metrics to {cfg.host}:{cfg.port} (config key metrics.port): "
                          f"{e.strerror}") from None
        self._httpd.peers = PeerFilter(cfg.allowed_peers, "metrics.allowed_peers")
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics", daemon=True)

    def start(self) -> int:
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics", self._cfg.host, self.port)
        return self.port

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
