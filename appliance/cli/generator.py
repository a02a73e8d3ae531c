"""appliance-generator: a systemd generator that writes the listening addresses of
appliance.socket (MLLP, DICOM, metrics) and appliance-grpc.socket (gRPC over TCP, mutual TLS)
from /etc/appliance/appliance.toml, so IT edits one file. systemd runs it at boot and on every
`systemctl daemon-reload`, with the directory for generated units as its first argument.

A generator must never fail the boot: an unreadable or invalid config writes nothing (the units'
own loopback defaults stay) and says why on stderr (the journal)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..api.activation import units
from ..config import DEFAULT_CONFIG_PATH, load_config
from ..errors import ApplianceError

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
