"""appliance-generator: a systemd generator that writes the listening addresses of
appliance.socket (MLLP, DICOM, metrics) and appliance-grpc.socket (gRPC over TCP, mutual TLS)
from /etc/appliance/appliance.toml, so IT edits one file. systemd runs it at boot and on every
`systemctl daemon-reload`, with the directory for generated units as its first argument.

A generator must never fail the boot: an unreadable or invalid config writes nothing (the units'
own loopback defaults stay) and says why on stderr (the journal)."""
from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

from ..config import DEFAULT_CONFIG_PATH, Config, load_config
from ..errors import ApplianceError

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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: appliance-generator NORMAL_DIR [EARLY_DIR LATE_DIR]", file=sys.stderr)
        return 2
    normal = Path(args[0])
    config = Path(args[3]) if len(args) > 3 else DEFAULT_CONFIG_PATH  # a fourth argument: tests only
    try:
        files = units(load_config(config))
    except (ApplianceError, OSError) as e:
        print(f"appliance-generator: {e}; appliance.socket keeps its loopback defaults", file=sys.stderr)
        return 0
    for rel, text in files.items():
        path = normal / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
