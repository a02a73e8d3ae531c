"""systemd integration: notify and watchdog. Harmless outside systemd."""
from __future__ import annotations

from typing import Any

import logging
import os
import socket
import threading
from collections.abc import Callable

_sd_daemon: Any
_sd_journal: Any
try:
    from systemd import daemon as _sd_daemon  # type: ignore[attr-defined,no-redef]  # no type information
    from systemd import journal as _sd_journal  # type: ignore[attr-defined,no-redef]
except ImportError:  # a dev machine without systemd-python
    _sd_daemon = None
    _sd_journal = None


def notify(state: str) -> bool:
    if _sd_daemon is None or not os.environ.get("NOTIFY_SOCKET"):
        return False
    return bool(_sd_daemon.notify(state))


def listen_sockets() -> list[socket.socket]:
    """The listening sockets systemd passed this process (socket activation); empty when
    started any other way. systemd-python's listen_fds (sd_listen_fds) checks LISTEN_PID and
    removes the variables, so no child inherits them."""
    if _sd_daemon is None:  # a dev machine without systemd-python: nothing was passed
        return []
    out = []
    for fd in _sd_daemon.listen_fds():
        os.set_inheritable(fd, False)
        out.append(socket.socket(fileno=fd))
    return out


def log_handler() -> logging.Handler:
    """journald when started by systemd (JOURNAL_STREAM is set), else stderr."""
    if _sd_journal is not None and os.environ.get("JOURNAL_STREAM"):
        handler: logging.Handler = _sd_journal.JournalHandler(SYSLOG_IDENTIFIER="applianced")
        return handler
    h = logging.StreamHandler()
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return h


class Watchdog:
    """Pings WATCHDOG=1 at half the unit's WatchdogSec while `healthy()` holds."""

    def __init__(self, healthy: Callable[[], bool]) -> None:
        usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        self.interval = usec / 2e6 if usec else 0.0
        self._healthy = healthy
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)

    def start(self) -> None:
        if self.interval:
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self._healthy():
                notify("WATCHDOG=1")

    def stop(self) -> None:
        self._stop.set()
