"""Socket activation: which passed socket serves which listener. systemd (appliance.socket)
holds the TCP ports, so the daemon can run with no network of its own (PrivateNetwork=yes, no
AF_INET) and a restart never refuses a connection: it waits in the socket's queue.

The ports come from the one config file: appliance-generator writes them into the socket unit
at boot and on `systemctl daemon-reload`, and each passed socket is matched to its listener by
port. A socket no listener claims, or a listener with no socket, means the two disagree."""
from __future__ import annotations

import socket
from pathlib import Path

from ..config import Config

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
