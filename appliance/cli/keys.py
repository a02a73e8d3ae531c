"""`appliancectl escrow`: the installation's three keys wrapped for an offline recovery key, and
put back on a new machine (store/escrow.py). Keys are files in a development state directory and
encrypted systemd credentials in a package install; both are read and written here."""
from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

from ..config import Config, load_config
from ..errors import ApplianceError, StoreKeyError
from ..store import escrow
from ..store.credentials import CRED_DIR, clear_keys, cred_path, encrypt
from ..store.keys import read_key, replace_private
from .units import service_paused


def key_files(cfg: Config) -> dict[str, Path]:
    return {"db.key": cfg.store.key_file, "deid.key": cfg.deid.secret_file, "audit.key": cfg.store.audit_key_file}


def as_credentials(cfg: Config) -> bool:
    """A package install: the keys are CRED_DIR/NAME.cred, not files in the state directory."""
    return not cfg.store.key_file.exists() and cred_path(CRED_DIR, cfg.store.key_file.name).exists()


def installed_keys(cfg: Config, names: tuple[str, ...] = escrow.NAMES) -> dict[str, bytes]:
    """This installation's keys by name (those that exist): decrypted from the package's
    credentials (root only), or read from the state directory's files."""
    files = {n: p for n, p in key_files(cfg).items() if n in names}
    if as_credentials(cfg):
        with clear_keys(CRED_DIR, tuple(p.name for p in files.values())) as tmp:
            return {n: read_key(tmp / p.name, n) for n, p in files.items() if (tmp / p.name).exists()}
    return {n: read_key(p, n) for n, p in files.items() if p.exists()}


def install_key(cfg: Config, name: str, key: bytes) -> None:
    """Key `name` replaced by `key`: its encrypted credential where the package keeps it there,
    else its 0600 file, in one rename either way."""
    path = key_files(cfg)[name]
    cred = cred_path(CRED_DIR, path.name)
    if not path.exists() and cred.exists():
        with clear_keys(CRED_DIR, ()) as tmp:
            (tmp / path.name).write_text(key.hex() + "\n")
            encrypt(tmp / path.name, path.name, cred)
    else:
        replace_private(path, key.hex() + "\n")


def cmd_escrow_keygen(args: argparse.Namespace) -> int:
    private, public = escrow.keygen(args.out_dir)
    print(f"recovery key pair made: {public} (give this to `appliancectl escrow export`) and {private} "
          "(0600: move it off this machine to the offline safe now, and delete it here)")
    return 0


def cmd_escrow_export(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    keys = installed_keys(cfg)
    if "db.key" not in keys:
        raise ApplianceError(f"no database key found ({cfg.store.key_file} or {cred_path(CRED_DIR, 'db.key')})")
    data = escrow.wrap(keys, args.recovery_cert, socket.gethostname())
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    print(f"escrow written: {args.out} ({', '.join(sorted(keys))}, wrapped for {args.recovery_cert}). Keep it apart "
          "from the machine; it opens this database only with the recovery private key. Export again after "
          "`appliancectl rotate-key`.")
    return 0


def cmd_escrow_recover(args: argparse.Namespace) -> int:
    """On a new (or repaired) machine: the escrowed keys replace this installation's, once the
    escrowed database key is shown to open the database that is there."""
    from ..store import open_store
    from ..store.lock import StateLock

    cfg = load_config(args.config)
    found = escrow.unwrap(args.escrow.read_bytes(), args.recovery_key)
    keys = {n: bytes.fromhex(h) for n, h in found.keys.items() if n in escrow.NAMES}
    as_creds = as_credentials(cfg)
    with service_paused(args.config), StateLock(cfg.state_dir, "escrow-recover"):
        if cfg.store.path.exists():
            # Both keys: a store closed without its audit key would anchor an unkeyed audit head.
            probe = {n: cfg.state_dir / "run" / f".escrow-probe.{n}" for n in ("db.key", "audit.key") if n in keys}
            probe["db.key"].parent.mkdir(parents=True, exist_ok=True)
            for name, path in probe.items():
                replace_private(path, keys[name].hex() + "\n")
            try:
                open_store(cfg.store.path, probe["db.key"], probe.get("audit.key")).close()
            except StoreKeyError:
                raise ApplianceError(f"the escrowed database key does not open {cfg.store.path}: copy the "
                                     "old machine's database (and its .audit-head) there first, or use its own "
                                     "escrow") from None
            finally:
                for path in probe.values():
                    path.unlink(missing_ok=True)
        for name, key in keys.items():
            install_key(cfg, name, key)
    where = f"encrypted credentials in {CRED_DIR}" if as_creds else f"key files in {cfg.state_dir}"
    print(f"keys recovered from {args.escrow} (made on {found.host or 'an unnamed host'}) into {where}: "
          f"{', '.join(sorted(keys))}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("escrow", help="the keys wrapped for an offline recovery key, and their recovery")
    esc = p.add_subparsers(dest="escrow_cmd", required=True)
    e = esc.add_parser("keygen", help="make a recovery key pair (do this on the offline machine)")
    e.add_argument("--out-dir", type=Path, required=True, help="where recovery.key and recovery.pub.pem are written")
    e.set_defaults(fn=cmd_escrow_keygen)
    e = esc.add_parser("export", help="write this installation's keys wrapped for the recovery public key")
    e.add_argument("--recovery-cert", type=Path, required=True,
                   help="the recovery public key or certificate (PEM, RSA 3072 bits or more)")
    e.add_argument("--out", type=Path, required=True, help="the escrow file to write (a new 0600 file)")
    e.set_defaults(fn=cmd_escrow_export)
    e = esc.add_parser("recover", help="install escrowed keys here (root; stops and restarts the service)")
    e.add_argument("escrow", type=Path, help="the escrow file from `escrow export`")
    e.add_argument("--recovery-key", type=Path, required=True, help="the recovery private key (PEM)")
    e.set_defaults(fn=cmd_escrow_recover)
