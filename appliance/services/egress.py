"""The in-process egress guard: every outbound connect or datagram from Python code is checked
against loopback, unix sockets and the configured peers (egress.allowed), and refused otherwise,
logged (the address only) and counted. The systemd unit enforces the same for native code
(IPAddressDeny=any); this is the second line, and the one that also holds outside systemd."""
from __future__ import annotations

from typing import Any

import ipaddress
import logging
import socket
import sys
import threading
from collections.abc import Iterable

log = logging.getLogger(__name__)


class EgressRefused(PermissionError):
    pass


class EgressGuard:
    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.networks = [ipaddress.ip_network(a, strict=False) for a in allowed]
        self.refused = 0
        self._lock = threading.Lock()

    def permits(self, address: object) -> bool:
        if isinstance(address, (str, bytes)):
            return True  # AF_UNIX: a path on this machine (sd_notify, journald, the local socket)
        if not isinstance(address, tuple) or not address:
            return True  # AF_NETLINK and other local families
        host = address[0]
        try:
            ip = ipaddress.ip_address(host.split("%")[0] if isinstance(host, str) else host)
        except ValueError:
            return False  # a name, not an address: nothing here connects by name
        if ip.is_loopback or (isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped
                              and ip.ipv4_mapped.is_loopback):
            return True
        return any(ip in n for n in self.networks)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event not in ("socket.connect", "socket.sendto", "socket.sendmsg"):
            return
        address = args[1] if len(args) > 1 else None
        sock = args[0]
        inet = event == "socket.connect" or getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6)
        if inet and address is not None and not self.permits(address):
            with self._lock:
                self.refused += 1
            shown = address[0] if isinstance(address, tuple) else "?"
            log.warning("egress refused: outbound %s to %s (not loopback, not in egress.allowed)",
                        event.split(".")[1], shown)
            raise EgressRefused(f"outbound connection to {shown} refused by the appliance's egress guard "
                                "(config key egress.allowed)")


_installed: EgressGuard | None = None


def install(allowed: Iterable[str] = ()) -> EgressGuard:
    """Install once per process (audit hooks cannot be removed); later calls widen nothing."""
    global _installed
    if _installed is None:
        _installed = EgressGuard(allowed)
        sys.addaudithook(_installed._hook)
    return _installed
