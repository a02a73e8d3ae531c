"""Who may open a connection to a TCP listener: the peer's address against the listener's
`allowed_peers` (addresses or networks), and, where the listener speaks TLS with a client CA,
the peer's certificate. Shared by MLLP, DICOM and metrics so the three ports keep one rule.

An empty list admits no one, loopback included: on a shared workstation any local account can
reach 127.0.0.1, so a local listener is something the config says, never a default."""
from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterable
from pathlib import Path

from .transport import state_path

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDRs; ValueError names the one that is neither."""
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


class PeerFilter:
    def __init__(self, allowed: Iterable[str], key: str) -> None:
        self.networks = parse_networks(allowed)
        self.key = key  # the config key, for the log line an operator reads
        self.refused = 0

    def admits(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return False  # not an IP peer (a unix socket has no address to allow)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
        return any(ip in net for net in self.networks)


def server_tls(cert: str, key: str, client_ca: str, state_dir: Path | None, section: str) -> ssl.SSLContext | None:
    """A TLS server context from PEM files (relative paths under state_dir), or None without a
    certificate. With a client CA, a peer must present a certificate that CA signed (mutual TLS:
    what interface engines and PACS products use to prove which system is sending)."""
    if not cert:
        return None
    base = state_dir or Path(".")

    def path(value: str) -> Path:
        return state_path(base, value)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # BCP 195, which PACS and interface engines speak
    try:
        ctx.load_cert_chain(path(cert), path(key))
        if client_ca:
            ctx.load_verify_locations(path(client_ca))
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as e:
        raise OSError(f"{section.upper()} TLS files not usable (config keys {section}.tls_cert_file, "
                      f"{section}.tls_key_file, {section}.tls_client_ca_file): {e}") from None
    return ctx
