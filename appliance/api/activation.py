"""Socket activation: which passed socket serves which listener. systemd (appliance.socket)
holds the TCP ports, so the daemon can run with no network of its own (PrivateNetwork=yes, no
AF_INET) and a restart never refuses a connection: it waits in the socket's queue.

The ports come from the one config file: appliance-generator writes them into the socket unit
at boot and on `systemctl daemon-reload`, and each passed socket is matched to its listener by
port. A socket no listener claims, or a listener with no socket, means the two disagree."""
from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from ..config import Config
from ..errors import ApplianceError

FIX = "run `appliancectl apply-config` as root (it re-binds the sockets and starts the service)"


def assign(cfg: Config, passed: list[socket.socket], config_file: Path | str) -> dict[str, socket.socket]:
    """{"mllp" | "dicom" | "metrics": socket} for each enabled listener; {} when nothing was passed."""
    if not passed:
        return {}
    wanted = {name: port for name, enabled, port in (("mllp", cfg.mllp.enabled, cfg.mllp.port),
                                                     ("dicom", cfg.dicom.enabled, cfg.dicom.port),
                                                     ("metrics", cfg.metrics.enabled, cfg.metrics.port)) if enabled}
    out: dict[str, socket.socket] = {}
    for sock in passed:
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
            raise OSError(f"systemd passed a socket that is not a TCP listener ({sock.family.name}); "
                          "appliance.socket holds only ListenStream= TCP addresses")
        port = sock.getsockname()[1]
        names = [n for n, p in wanted.items() if p == port and n not in out]
        if not names:
            raise OSError(f"systemd passed a socket on port {port} that no enabled listener in {config_file} uses "
                          f"(mllp.port, dicom.port, metrics.port): the socket unit is older than the config; {FIX}")
        out[names[0]] = sock
    for name in wanted.keys() - out.keys():
        raise OSError(f"{name}.port {wanted[name]} in {config_file} has no socket from appliance.socket (the daemon "
                      f"has no network of its own under its unit); {FIX}")
    return out


# -- the socket units' drop-ins (appliance-generator writes them; check-config compares) ------
DROPIN = "50-listen.conf"
HEADER = ("# Written by appliance-generator from {src}: edit that file, then\n"
          "# `appliancectl apply-config` (as root).\n")
GENERATED = Path("/run/systemd/generator")  # where systemd has its generators write


def address(host: str, port: int) -> str:
    """A ListenStream= value: 127.0.0.1:2575, [::1]:2575, or 2575 alone for every address."""
    if host in ("", "::"):  # every address, IPv6 and IPv4
        return str(port)
    try:
        return f"[{host}]:{port}" if ipaddress.ip_address(host).version == 6 else f"{host}:{port}"
    except ValueError:  # a host name: systemd listens on addresses only
        raise ApplianceError(f"host {host!r} is not an IP address; socket activation listens on addresses") from None


def units(cfg: Config) -> dict[str, str]:
    """{relative path: contents} of the drop-ins for this config."""
    src = cfg.source
    listen = [address(c.host, c.port) for c in (cfg.mllp, cfg.dicom, cfg.metrics) if c.enabled]
    # The kernel's filter (where the cgroup's BPF programs are enforced) admits the same peers the
    # daemon does; an empty list resets IPAddressAllow=, leaving the unit's IPAddressDeny=any.
    peers = sorted({p for c in (cfg.mllp, cfg.dicom, cfg.metrics) if c.enabled for p in c.allowed_peers})
    out = {f"appliance.socket.d/{DROPIN}": HEADER.format(src=src) + "[Socket]\nListenStream=\n"
           + "".join(f"ListenStream={a}\n" for a in listen) + "IPAddressAllow=\n"
           + (f"IPAddressAllow={' '.join(peers)}\n" if peers else "")}
    if cfg.grpc.tls_cert_file:  # gRPC over TCP only with TLS; appliance-grpc.socket's condition is this file
        out[f"appliance-grpc.socket.d/{DROPIN}"] = (HEADER.format(src=src) + "[Socket]\nListenStream=\n"
                                                    f"ListenStream={address(cfg.grpc.host, cfg.grpc.port)}\n")
    return out


def stale(cfg: Config, generated: Path = GENERATED) -> list[str]:
    """The socket drop-ins systemd has loaded that differ from what `cfg` would write: the config
    changed since the last daemon-reload, so the ports systemd holds are not the config's. Empty
    where no drop-in was ever generated (not the installed service on a booted systemd)."""
    if not (generated / "appliance.socket.d" / DROPIN).exists():
        return []
    want = units(cfg)
    rels = set(want) | {f"appliance-grpc.socket.d/{DROPIN}"}
    out = []
    for rel in sorted(rels):
        path = generated / rel
        have = path.read_text(encoding="utf-8") if path.exists() else None
        if have != want.get(rel):
            out.append(str(path))
    return out
