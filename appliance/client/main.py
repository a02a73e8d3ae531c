"""appliance-client: the clinician's window. Connects over the local unix socket named in the
config file (default), or to another workstation's appliance over TCP with mutual TLS."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..version import package_version
from ..config import DEFAULT_CONFIG_PATH


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="appliance-client", description=__doc__)
    ap.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="the appliance's config (its socket)")
    ap.add_argument("--socket", type=Path, help="the appliance's unix socket (instead of --config)")
    ap.add_argument("--tls-target", help="HOST:PORT of an appliance on another workstation (mutual TLS)")
    ap.add_argument("--ca", type=Path, help="the CA that signed the appliance's certificate (with --tls-target)")
    ap.add_argument("--cert", type=Path, help="this workstation's client certificate (with --tls-target)")
    ap.add_argument("--key", type=Path, help="its private key (with --tls-target)")
    ap.add_argument("--refresh-seconds", type=float, default=2.0,
                    help="how often the worklist refreshes (default %(default)s)")
    ap.add_argument("--quit-after", type=float, default=0.0,
                    help="close after this many seconds (soak tests; 0: never)")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    from PySide6.QtWidgets import QApplication

    from .session import Session
    from .window import ClientWindow

    app = QApplication(sys.argv[:1])
    app.setApplicationName("appliance-client")
    if args.tls_target:
        if not (args.ca and args.cert and args.key):
            ap.error("--tls-target needs --ca, --cert and --key")
        session = Session.tls(args.tls_target, args.ca, args.cert, args.key)
    else:
        sock = args.socket
        if sock is None:
            from ..api.transport import state_path
            from ..config import load_config

            cfg = load_config(args.config)
            if not cfg.grpc.unix_socket:
                ap.error(f"{args.config} has no grpc.unix_socket; pass --socket or --tls-target")
            sock = state_path(cfg.state_dir, cfg.grpc.unix_socket)
        session = Session.unix(sock)
    window = ClientWindow(session, poll_ms=max(200, int(args.refresh_seconds * 1000)))
    window.resize(1366, 768)
    window.show()
    if args.quit_after > 0:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(int(args.quit_after * 1000), window.close)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
