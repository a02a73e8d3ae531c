"""Prometheus text exposition (format 0.0.4, written by prometheus-client) at GET /metrics.
Counts, states and timings only; nothing here ever carries report text, a name or an identifier.

The HTTP server is the standard library's, not prometheus-client's start_http_server: that one
binds its own socket, and under the unit the daemon may not (it serves the socket systemd passed,
and admits only metrics.allowed_peers)."""
from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.core import Metric as Metric_
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from ..config import MetricsConfig
from ..services.status import Metric
from .peers import PeerFilter

log = logging.getLogger(__name__)


class _Figures(Collector):
    """The daemon's figures (services/status.py) as prometheus-client metric families, so the
    exposition format is the library's. Read at each scrape; nothing is kept between scrapes."""

    def __init__(self, collect: Callable[[], list[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric_]:
        for m in self._collect():
            names = sorted({k for labels, _v in m.samples for k, _ in labels})
            family = (CounterMetricFamily if m.kind == "counter" else GaugeMetricFamily)(m.name, m.help, labels=names)
            for labels, value in m.samples:
                given = dict(labels)
                family.add_metric([given.get(k, "") for k in names], value)
            yield family


def render(metrics: list[Metric]) -> str:
    """Prometheus text format 0.0.4, by prometheus-client."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Figures(lambda: metrics))
    return generate_latest(registry).decode()


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

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is served here")
                    return
                try:
                    body = render(collect()).encode()
                # a scrape must never take the daemon down
                except Exception as e:  # noqa: BLE001
                    log.error("metrics collection failed: %s", type(e).__name__)
                    self.send_error(500, "metrics collection failed; see the daemon log")
                    return
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)
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
