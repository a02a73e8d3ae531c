"""appliancectl: init a state directory, submit HL7, read documents and summaries, run the
de-identifier offline. Exit codes: 0 ok, 1 refused by the appliance, 2 usage or config."""
from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar
import json
import os
import sys
from datetime import datetime, UTC
from pathlib import Path

import grpc

from ..version import package_version
from ..config import DEFAULT_CONFIG_PATH, Config, load_config
from ..errors import ApplianceError
from .keys import add_parsers as add_escrow_parsers, as_credentials
from .units import active_units, apply_config, installed_service, service_paused

T = TypeVar("T")


def _stub(args: argparse.Namespace) -> Any:
    from ..api.transport import client_channel
    from ..v1 import appliance_pb2_grpc as pb_grpc

    cfg = load_config(args.config)
    port = cfg.grpc.port
    ports = cfg.state_dir / "run" / "ports.json"
    if port == 0 and ports.exists():  # a daemon on a free port says where it listens
        port = json.loads(ports.read_text())["grpc"]
    return pb_grpc.ApplianceStub(client_channel(cfg.grpc, port, cfg.state_dir))


def _status_name(value: int) -> str:
    from ..v1 import appliance_pb2 as pb

    return str(pb.DocumentStatus.Name(value))


def cmd_init(args: argparse.Namespace) -> int:
    from .init import init_state

    path = init_state(args.state_dir, grpc_port=args.grpc_port, mllp_port=args.mllp_port,
                      dicom_port=args.dicom_port, metrics_port=args.metrics_port, model=args.model,
                      n_gpu_layers=args.n_gpu_layers, force=args.force)
    print(path)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from ..v1 import appliance_pb2 as pb

    from ..ingest.dicom.read import is_dicom_file

    data = args.path.read_bytes() if str(args.path) != "-" else sys.stdin.buffer.read()
    stub = _stub(args)
    if is_dicom_file(data):
        r = _retrying(args, lambda: stub.SubmitDICOM(pb.SubmitDICOMRequest(file=data, source=args.source), timeout=60))
        print(r.document_id)
        return 0
    resp = _retrying(args, lambda: stub.SubmitHL7(pb.SubmitHL7Request(message=data, source=args.source), timeout=60))
    rc = 0
    for r in resp.results:
        outcome = pb.Outcome.Name(r.outcome)
        if r.outcome in (pb.ACCEPTED, pb.DUPLICATE) and r.document_id and len(resp.results) == 1:
            print(r.document_id)
        else:
            print(f"{outcome}\t{r.message_control_id}\t{r.document_id or r.dead_letter_id}\t{r.reason}")
        if r.outcome in (pb.REJECTED, pb.ERROR):
            rc = 1
    return rc


def _retrying(args: argparse.Namespace, call: Callable[[], T]) -> T:
    """A call retried while the daemon answers UNAVAILABLE (starting, loading the model, disk full),
    with back-off, for at most --retry-for seconds; then its error as it stands. Safe: an
    UNAVAILABLE answer means nothing was stored."""
    import time

    deadline = time.monotonic() + args.retry_for
    delay = 0.5
    while True:
        try:
            return call()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() + delay > deadline:
                raise
            print(f"appliancectl: {e.details() or 'unavailable'}; retrying in {delay:.1f} s", file=sys.stderr)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def cmd_status(args: argparse.Namespace) -> int:
    from ..v1 import appliance_pb2 as pb

    status = json.loads(_stub(args).GetStatus(pb.GetStatusRequest(), timeout=30).json)
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0
    m, q, r = status["model"], status["queue"], status["retention"]
    age = q["oldest_pending_age_s"]
    lines = [
        f"appliance {status['version']}, up {status['uptime_s']} s",
        f"model      {Path(m['file']).name} ({m['quantisation'] or '?'}) sha256 {m['sha256'][:12]}... on {m['device']} "
        f"({m['device_reason']}), {m['gpu_layers']} layers offloaded, {m['threads']} threads",
        f"queue      {q['jobs_by_state'] or 'empty'}; pending {q['pending_by_priority'] or 0}"
        + (f"; oldest waiting {age} s" if age is not None else ""),
        f"documents  {status['documents_by_status'] or 'none'}",
        f"dead letters open: {status['dead_letters_open']}",
        f"retention  {r['days']} days (audit {r['audit_days']}); last run "
        + (datetime.fromtimestamp(r["last_run_unix"], UTC).isoformat(timespec="seconds")
           if r["last_run_unix"] else "not yet"),
        f"store      {status['store']['path']} {status['store']['bytes'] / 1e6:.1f} MB; key from "
        f"{status['key']['source']}, {status['key']['age_days']} days old",
        f"keys       {status['key'].get('custody', '?')}: {status['key'].get('custody_means', '')}",
        "listening  " + ", ".join(f"{k} {v}" for k, v in status["listeners"].items() if v),
        f"egress     in process: {status['egress_guard']['in_process']}; unit: {status['egress_guard']['unit']}",
    ]
    print("\n".join(lines))
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    """Erasure cannot be undone: it shows what would go first, and acts only on --yes or when the
    person at the terminal types the patient reference again."""
    from ..v1 import appliance_pb2 as pb

    stub = _stub(args)
    preview = stub.ErasePatient(pb.ErasePatientRequest(patient=args.patient, dry_run=True), timeout=600)
    what = (f"{preview.documents} documents, {preview.messages} messages, {preview.identities} identity records")
    if args.dry_run:
        print(f"would erase: {what} (nothing erased; --dry-run)")
        return 0
    if preview.documents == preview.messages == preview.identities == 0:
        print(f"nothing to erase for {args.patient}: no documents, messages or identity records")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"erase would remove {what} for good: confirm with --yes (or run it at a terminal)")
        print(f"this erases {what} for {args.patient}, for good.")
        typed = input(f"type {args.patient} to erase, anything else to stop: ").strip()
        if typed != args.patient:
            print("stopped: nothing erased")
            return 1
    r = stub.ErasePatient(pb.ErasePatientRequest(patient=args.patient), timeout=600)
    print(f"erased: {r.documents} documents, {r.messages} messages, {r.identities} identity records "
          "(one audit row written; the identifiers are not in it)")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from ..v1 import appliance_pb2 as pb

    if not args.key_out and not args.print_key:
        raise UsageError("give --key-out FILE (a new 0600 file; keep it apart from the backup) or --print-key; "
                         "the backup's key is shown once and never stored by the appliance")
    r = _stub(args).Backup(pb.BackupRequest(name=args.name or ""), timeout=3600)
    if args.key_out:
        fd = os.open(args.key_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(r.key_hex + "\n")
        where = f"its key is in {args.key_out} (0600)"
    else:
        where = f"its key (shown once, keep it with the backup, apart from this machine): {r.key_hex}"
    print(f"backup written and checked: {r.path} ({r.documents} documents); {where}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from ..v1 import appliance_pb2 as pb

    problems = list(_stub(args).CheckStore(pb.CheckStoreRequest(quick=args.quick), timeout=3600).problems)
    for p in problems:
        print(p)
    print("store integrity: ok" if not problems else f"store integrity: {len(problems)} problems")
    return 0 if not problems else 1


def _db_key(cfg: Config) -> bytes:
    """This installation's database key: the key file, or (package installs) the encrypted
    systemd credential, which root can decrypt."""
    from ..store.keys import read_key
    from .keys import installed_keys

    key = installed_keys(cfg, ("db.key",)).get("db.key")
    return key if key is not None else read_key(cfg.store.key_file, "store")  # its error names the file


def cmd_restore(args: argparse.Namespace) -> int:
    from ..store.lifecycle import carried_audit_key, restore
    from ..store.lock import StateLock

    cfg = load_config(args.config)
    key_hex = args.key_file.read_text().strip() if args.key_file else args.key
    if not key_hex:
        raise ApplianceError("give the backup's key: --key-file FILE or --key HEX")
    with service_paused(args.config), StateLock(cfg.state_dir, "restore"):  # the lock refuses while a daemon runs
        carried = carried_audit_key(args.backup, key_hex)
        n = restore(args.backup, key_hex, cfg.store.path, _db_key(cfg))
        if carried is not None:
            _install_audit_key(cfg, carried)
        _record_offline(cfg, "store.restore", args.backup.name, f"documents={n}")
    running = installed_service(args.config) and "appliance.service" in active_units()
    print(f"restored {n} documents from {args.backup} into {cfg.store.path} (re-encrypted under this "
          "installation's key" + ("; the audit chain's key came with it" if carried else "") + ")"
          + ("; the service is running on it" if running else "; start the service"))
    return 0


def _person() -> str:
    """Who runs this command: the user behind sudo, or the login user."""
    import getpass

    return os.environ.get("SUDO_USER") or getpass.getuser()


def _install_audit_key(cfg: Config, key: bytes) -> None:
    """The restored rows are keyed with the backup's audit key: it replaces this installation's
    (a file, or on package installs the encrypted credential), so `audit verify` passes."""
    from .keys import install_key

    install_key(cfg, "audit.key", key)
    _owned_like(cfg.state_dir, [cfg.store.audit_key_file])


def _record_offline(cfg: Config, action: str, object_id: str, detail: str) -> None:
    """An audit row for what an administrator did with the daemon stopped, under their name."""
    from contextlib import ExitStack

    from ..store import open_store
    from ..store.credentials import CRED_DIR, clear_keys

    with ExitStack() as stack:
        key_file, audit_file = cfg.store.key_file, cfg.store.audit_key_file
        if not key_file.exists():  # package install: the keys are encrypted credentials
            tmp = stack.enter_context(clear_keys(CRED_DIR, (key_file.name, audit_file.name)))
            key_file, audit_file = tmp / key_file.name, tmp / audit_file.name
        store = open_store(cfg.store.path, key_file, audit_file if audit_file.exists() else None)
        try:
            store.audit(_person(), action, object_id, detail)
        finally:
            store.close()
    _owned_like(cfg.state_dir, [cfg.store.path, Path(f"{cfg.store.path}-wal"), Path(f"{cfg.store.path}-shm"),
                                Path(f"{cfg.store.path}.audit-head")])


def cmd_certs_init(args: argparse.Namespace) -> int:
    from .certs import init_pki

    clients = dict(c.split(":", 1) for c in args.client)
    bad = [r for r in clients.values() if r not in ("integration", "clinician", "admin")]
    if bad or any(":" not in c for c in args.client):
        raise ApplianceError("each --client is NAME:ROLE with ROLE integration, clinician or admin")
    if bool(args.ca_cert) != bool(args.ca_key):
        raise ApplianceError("give both --ca-cert and --ca-key (the hospital's CA), or neither (a local CA)")
    names = tuple(args.server_name) or ("localhost", "127.0.0.1")
    snippet = init_pki(args.dir, names, clients, args.ca_cert, args.ca_key)
    print(f"certificates in {args.dir} (keys 0600). Put these in the config file, then restart:\n")
    print(snippet)
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from ..v1 import appliance_pb2 as pb

    r = _stub(args).VerifyAudit(pb.VerifyAuditRequest(), timeout=600)
    print(f"audit chain intact: {r.rows} rows" if r.ok else f"audit chain BROKEN: {r.problem}")
    return 0 if r.ok else 1


def cmd_audit_export(args: argparse.Namespace) -> int:
    from ..v1 import appliance_pb2 as pb

    try:
        since = int(datetime.fromisoformat(args.since).replace(tzinfo=UTC).timestamp() * 1000) if args.since else 0
    except ValueError:
        raise UsageError(f"--since {args.since!r} is not an ISO date or time "
                         "(e.g. 2026-12-01 or 2026-12-01T08:00)") from None
    n = 0
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(args.out, "w", encoding="utf-8")) if args.out else sys.stdout
        for row in _stub(args).ExportAudit(pb.ExportAuditRequest(since_unix_ms=since), timeout=3600):
            out.write(row.json + "\n")
            n += 1
    print(f"{n} audit rows", file=sys.stderr)
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..store.credentials import CRED_DIR, cred_path
    from ..store.lock import StateLock
    from ..store.rotate import rotate_key

    cfg = load_config(args.config)
    cred_dir = args.credentials or (CRED_DIR if as_credentials(cfg) else None)
    with service_paused(args.config), StateLock(cfg.state_dir, "rotate-key"):
        if cred_dir is None:
            kept = rotate_key(cfg.store.path, cfg.store.key_file, audit_key_file=cfg.store.audit_key_file)
            where = str(cfg.store.key_file)
            _owned_like(cfg.state_dir, [cfg.store.path, Path(f"{cfg.store.path}-wal"), Path(f"{cfg.store.path}-shm"),
                                        Path(f"{cfg.store.path}.audit-head"), cfg.store.key_file])
        else:
            kept = _rotate_credential(cfg, Path(cred_dir))
            where = f"{cred_path(Path(cred_dir), 'db.key')} (encrypted with systemd-creds)"
    print(f"database re-encrypted under a new key: {kept} documents kept; new key in {where}. "
          "Escrow the new key now (without it a copy of the database cannot be read elsewhere): "
          "appliancectl escrow export --recovery-cert RECOVERY.pub.pem --out FILE; older backups keep their own keys.")
    return 0


def _rotate_credential(cfg: Config, cred_dir: Path) -> int:
    """The package's keys are encrypted credentials: decrypted on tmpfs for the rotation, the new
    key encrypted beside the old (db.key.new.cred) before the database is swapped, renamed over
    it after. Run again after an interruption, it finishes what the last run began."""
    from ..errors import StoreKeyError
    from ..store import open_store
    from ..store.credentials import clear_keys, cred_path, decrypt, encrypt
    from ..store.rotate import rotate_key

    current, pending = cred_path(cred_dir, "db.key"), cred_path(cred_dir, "db.key.new")
    with clear_keys(cred_dir, ("db.key", "audit.key")) as tmp:
        key, audit = tmp / "db.key", tmp / "audit.key"
        if pending.exists():  # an interrupted rotation: keep whichever key opens the database
            decrypt(pending, "db.key", tmp / "db.key.new")
            try:
                open_store(cfg.store.path, key).close()
            except StoreKeyError:
                open_store(cfg.store.path, tmp / "db.key.new").close()  # neither: its error says so
                os.replace(pending, current)
                os.replace(tmp / "db.key.new", key)
            pending.unlink(missing_ok=True)
        kept = rotate_key(cfg.store.path, key, audit_key_file=audit if audit.exists() else cfg.store.audit_key_file,
                          persist_new=lambda new: encrypt(new, "db.key", pending),
                          swapped=lambda: os.replace(pending, current))
    _owned_like(cfg.state_dir, [cfg.store.path, Path(f"{cfg.store.path}-wal"), Path(f"{cfg.store.path}-shm"),
                                Path(f"{cfg.store.path}.audit-head"), cfg.state_dir / "run" / "lock"])
    return kept


def _owned_like(state_dir: Path, paths: list[Path]) -> None:
    """Files root made in the service's state directory go to the service's user, or it could not
    open them."""
    st = state_dir.stat()
    for p in paths:
        if p.exists():
            if os.geteuid() == 0:
                os.chown(p, st.st_uid, st.st_gid)
            os.chmod(p, 0o600)


def cmd_apply_config(args: argparse.Namespace) -> int:
    from ..daemon import check_config

    if check_config(args.config, sockets=False) != 0:
        return 2
    for step in apply_config(args.config):
        print(f"appliancectl: {step}")
    return 0


def _warn_unsupported(final: Any) -> None:
    if final.unsupported_numbers:
        print("-- not in the report, do not trust: " + ", ".join(final.unsupported_numbers), file=sys.stderr)
    for flag in final.grounding_flags:
        print(f"-- check against the report: {flag}", file=sys.stderr)


def cmd_summary(args: argparse.Namespace) -> int:
    from ..v1 import appliance_pb2 as pb

    stub = _stub(args)
    if not args.follow:
        # Without --follow: print the stored summary, or say it is not ready.
        for ev in stub.StreamSummary(pb.StreamSummaryRequest(document_id=args.doc_id), timeout=5):
            if ev.HasField("queued"):
                print(f"appliancectl: no summary yet ({ev.queued.ahead} summaries ahead of it); --follow waits "
                      "for it", file=sys.stderr)
                return 1
            if ev.HasField("final"):
                if ev.final.stale:
                    print("STALE: the report was superseded after this summary was written; open its "
                          "replacement (appliancectl documents)")
                print(ev.final.text)
                _warn_unsupported(ev.final)
                return 0
        print("appliancectl: no summary yet (queued or being written); --follow waits for it", file=sys.stderr)
        return 1
    streamed = False
    for ev in stub.StreamSummary(pb.StreamSummaryRequest(document_id=args.doc_id), timeout=args.timeout):
        if ev.HasField("queued"):
            when = f", about {round(ev.queued.estimate_s)} s" if ev.queued.estimate_s > 0 else ""
            print(f"-- waiting: {ev.queued.ahead} summaries ahead{when}", file=sys.stderr)
            continue
        if ev.HasField("token"):
            sys.stdout.write(ev.token)
            sys.stdout.flush()
            streamed = True
        else:
            if streamed:  # each line as it passed grounding; then the summary as stored
                sys.stdout.write("--- stored summary (critical findings and impression first) ---\n")
            sys.stdout.write(ev.final.text + "\n")
            if ev.final.stale:
                print("-- STALE: the report was superseded after this summary was written", file=sys.stderr)
            print(f"-- {ev.final.tokens} tokens, model {ev.final.model}, "
                  f"{ev.final.leaks_redacted} identifiers redacted by the leak gate", file=sys.stderr)
            _warn_unsupported(ev.final)
    return 0


def cmd_documents(args: argparse.Namespace) -> int:
    from ..v1 import appliance_pb2 as pb

    docs = _stub(args).ListDocuments(pb.ListDocumentsRequest(limit=args.limit), timeout=30).documents
    rows = [{"id": d.id, "kind": d.kind, "source": d.source, "status": _status_name(d.status),
             "received": datetime.fromtimestamp(d.received_unix_ms / 1000, UTC).isoformat(timespec="seconds")}
            for d in docs]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no documents yet", file=sys.stderr)
    else:
        for r in rows:
            print(f"{r['id']}\t{r['kind']}\t{r['source']}\t{r['status']}\t{r['received']}")
    return 0


def cmd_document(args: argparse.Namespace) -> int:
    from ..v1 import appliance_pb2 as pb

    d = _stub(args).GetDocument(pb.GetDocumentRequest(document_id=args.doc_id), timeout=30)
    print(d.deidentified_text)
    return 0


def cmd_deadletters(args: argparse.Namespace) -> int:
    from ..v1 import appliance_pb2 as pb

    rows = [{"id": r.id, "transport": r.transport, "size_bytes": r.size_bytes, "reason": r.reason,
             "received": datetime.fromtimestamp(r.received_unix_ms / 1000, UTC).isoformat(timespec="seconds")}
            for r in _stub(args).ListDeadLetters(pb.ListDeadLettersRequest(limit=args.limit), timeout=30).dead_letters]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no dead letters: every message received was accepted", file=sys.stderr)
    for r in [] if args.json else rows:
        print(f"{r['id']}\t{r['transport']}\t{r['received']}\t{r['size_bytes']}B\t{r['reason']}")
    return 0


def cmd_resubmit(args: argparse.Namespace) -> int:
    from ..v1 import appliance_pb2 as pb

    fixed = args.file.read_bytes() if args.file else b""
    resp = _stub(args).ResubmitDeadLetter(pb.ResubmitDeadLetterRequest(dead_letter_id=args.dead_letter_id,
                                                                       corrected_message=fixed), timeout=60)
    rc = 0
    for r in resp.results:
        print(f"{pb.Outcome.Name(r.outcome)}\t{r.message_control_id}\t{r.document_id or r.dead_letter_id}\t{r.reason}")
        rc = rc or (1 if r.outcome in (pb.REJECTED, pb.ERROR) else 0)
    return rc


def cmd_validate(args: argparse.Namespace) -> int:
    """hl7apy's full structural parse, offline: slower than intake's checks, for diagnosis."""
    from ..errors import InvalidMessage
    from ..ingest.hl7.er7 import decode_message, split_batch
    from ..ingest.hl7.parse import deep_validate, parse

    rc = 0
    for i, text in enumerate(split_batch(decode_message(args.path.read_bytes())), start=1):
        try:
            parse(text)
            deep_validate(text)
            print(f"message {i}: OK")
        except InvalidMessage as e:
            print(f"message {i}: {e.reason}")
            rc = 1
    return rc


def cmd_deid(args: argparse.Namespace) -> int:
    from .deid import run_deid_jsonl

    tally = run_deid_jsonl(args.jsonl, args.out, args.secret_file, args.resume)
    print(f"appliancectl: {tally.message('de-identified', args.out)}", file=sys.stderr)
    return 2 if tally.refused else 0


def cmd_summarize(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..config import ModelConfig, load_config
    from ..llm.prompt import site_examples
    from .summarize import run_summarize_jsonl

    # The config's model settings (the chronic-findings policy, the context, the token budget)
    # and the site's examples hold here as in the daemon; --model only swaps the file.
    examples: tuple[tuple[list[str], str], ...] = ()
    if args.model is None or Path(args.config).exists():
        full = load_config(args.config)
        cfg, examples = full.model, site_examples(full.state_dir)
    else:
        cfg = ModelConfig()
    if args.model is not None:
        cfg = replace(cfg, path=args.model, n_threads=args.threads, n_gpu_layers=args.n_gpu_layers)
    tally = run_summarize_jsonl(args.jsonl, args.out, cfg, args.model, examples, args.resume)
    print(f"appliancectl: {tally.message('summarised', args.out)}", file=sys.stderr)
    return 2 if tally.refused else 0


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="appliancectl", description=__doc__)
    ap.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="TOML config (default %(default)s)")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    p = sub.add_parser("init", help="create a state directory: config, keys, pinned model")
    p.add_argument("--state-dir", type=Path, required=True,
                   help="directory for the config, keys and database (created)")
    p.add_argument("--grpc-port", type=int, default=50051,
                   help="gRPC TCP port (default %(default)s; 0 picks a free one)")
    p.add_argument("--mllp-port", type=int, default=2575, help="HL7 MLLP port (default %(default)s)")
    p.add_argument("--dicom-port", type=int, default=11112, help="DICOM C-STORE port (default %(default)s)")
    p.add_argument("--metrics-port", type=int, default=9464, help="Prometheus /metrics port (default %(default)s)")
    p.add_argument("--model", type=Path,
                   help="GGUF file (default: the installed default model, see appliance.llm.models)")
    p.add_argument("--n-gpu-layers", type=int, default=-1,
                   help="layers offloaded to the GPU (-1: all; 0: CPU only; default %(default)s)")
    p.add_argument("--force", action="store_true", help="overwrite an existing config (keys are kept)")
    p.set_defaults(fn=cmd_init)

    p = sub.add_parser("submit", help="send an HL7 v2 file or a DICOM SR file (or - for stdin) over gRPC; "
                                          "prints the document id")
    p.add_argument("path", type=Path, help="the file, or - to read standard input")
    p.add_argument("--source", default="appliancectl", help="recorded as the document's source (default %(default)s)")
    p.add_argument("--retry-for", type=float, default=60.0,
                   help="seconds to keep retrying while the daemon answers UNAVAILABLE (default %(default)s)")
    p.set_defaults(fn=cmd_submit)

    p = sub.add_parser("status", help="the appliance at a glance: model, device, queue, documents, retention, keys")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(fn=cmd_status)
    p = sub.add_parser("erase", help="erase one patient: documents, summaries, messages, identifiers")
    p.add_argument("--patient", required=True, help="ISSUER:ID as in PID-3, e.g. GH:MRN4471902")
    p.add_argument("--dry-run", action="store_true", help="count what would be erased; erase nothing")
    p.add_argument("--yes", action="store_true",
                   help="erase without asking (scripts); without it, confirm at the prompt")
    p.set_defaults(fn=cmd_erase)
    p = sub.add_parser("backup", help="write an encrypted, checked backup while the daemon runs")
    p.add_argument("--name", help="file name under store.backup_dir (default: a timestamp)")
    p.add_argument("--key-out", type=Path, help="write the backup's key to this new 0600 file, not the screen")
    p.add_argument("--print-key", action="store_true", help="print the backup's key on the screen instead (once)")
    p.set_defaults(fn=cmd_backup)
    p = sub.add_parser("restore", help="replace the database with a backup (daemon stopped)")
    p.add_argument("backup", type=Path, help="the backup file (from appliancectl backup)")
    p.add_argument("--key-file", type=Path, help="file holding the backup's key (64 hex digits)")
    p.add_argument("--key", help="the backup's key itself (prefer --key-file: a key on the command line is seen by ps)")
    p.set_defaults(fn=cmd_restore)
    p = sub.add_parser("check", help="check the store's integrity (SQLCipher page HMACs and SQLite)")
    p.add_argument("--quick", action="store_true", help="SQLite's quick check only (seconds, not minutes)")
    p.set_defaults(fn=cmd_check)

    p = sub.add_parser("audit", help="the audit chain: verify it, export it for the SIEM")
    audit = p.add_subparsers(dest="audit_cmd", required=True)
    a = audit.add_parser("verify", help="check every row's MAC and the chain; names the first bad row")
    a.set_defaults(fn=cmd_audit_verify)
    a = audit.add_parser("export", help="JSON lines, metadata only")
    a.add_argument("--since", help="ISO date or time, UTC (default: everything)")
    a.add_argument("--out", type=Path, help="write the JSON lines to this file (default: standard output)")
    a.set_defaults(fn=cmd_audit_export)

    p = sub.add_parser("certs", help="TLS certificates for the TCP port")
    certs = p.add_subparsers(dest="certs_cmd", required=True)
    c = certs.add_parser("init", help="a local CA (or the hospital's), the server's and clients' certificates")
    c.add_argument("--dir", type=Path, required=True, help="directory for the CA, server and client files (created)")
    c.add_argument("--server-name", action="append", default=[], help="DNS name or IP of this machine (repeat)")
    c.add_argument("--client", action="append", default=[], help="NAME:ROLE, e.g. his-engine:integration (repeat)")
    c.add_argument("--ca-cert", type=Path, help="the hospital CA's certificate (PEM), instead of a local CA")
    c.add_argument("--ca-key", type=Path, help="the hospital CA's private key (PEM), with --ca-cert")
    c.set_defaults(fn=cmd_certs_init)

    p = sub.add_parser("rotate-key", help="re-encrypt the database under a new random key (daemon stopped)")
    p.add_argument("--credentials", type=Path, default=None,
                   help="the directory of the encrypted keys (NAME.cred); default /etc/appliance/credentials "
                        "when it holds db.key.cred and the config's key file does not exist (a package install)")
    p.set_defaults(fn=cmd_rotate_key)
    add_escrow_parsers(sub)
    p = sub.add_parser("apply-config", help="put a changed config in effect: new ports re-bound by systemd, the "
                                            "service restarted (root, installed service)")
    p.set_defaults(fn=cmd_apply_config)
    p = sub.add_parser("summary", help="print a document's summary")
    p.add_argument("doc_id", help="the document's id (appliancectl documents)")
    p.add_argument("--follow", action="store_true",
                   help="stream each line of the summary as soon as it has passed grounding")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait with --follow (default %(default)s)")
    p.set_defaults(fn=cmd_summary)

    p = sub.add_parser("documents", help="list recent documents")
    p.add_argument("--limit", type=int, default=50, help="how many, newest first (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tab-separated lines")
    p.set_defaults(fn=cmd_documents)

    p = sub.add_parser("document", help="print a document's de-identified text")
    p.add_argument("doc_id", help="the document's id (appliancectl documents)")
    p.set_defaults(fn=cmd_document)

    p = sub.add_parser("deadletters", help="list messages that were refused, with the reason")
    p.add_argument("--limit", type=int, default=50, help="how many, newest first (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tab-separated lines")
    p.set_defaults(fn=cmd_deadletters)

    p = sub.add_parser("resubmit", help="run a dead letter through intake again (optionally corrected)")
    p.add_argument("dead_letter_id", help="the dead letter's id (appliancectl deadletters)")
    p.add_argument("--file", type=Path, help="the corrected message; default: the stored bytes")
    p.set_defaults(fn=cmd_resubmit)

    p = sub.add_parser("validate", help="check an HL7 file offline (intake rules and hl7apy's full parse)")
    p.add_argument("path", type=Path, help="an HL7 v2 file (one message, a batch or a file of messages)")
    p.set_defaults(fn=cmd_validate)

    p = sub.add_parser("deid", help="de-identify a JSONL corpus offline (no daemon)")
    p.add_argument("--jsonl", type=Path, required=True, help='input, lines {"id", "text"}')
    p.add_argument("--out", type=Path, required=True,
                   help='output, lines {"id", "deidentified", "spans"} or {"id", "error"}')
    p.add_argument("--secret-file", type=Path, help="surrogate secret (default: a fresh random one)")
    p.add_argument("--resume", action="store_true", help="keep --out and skip the ids it already holds")
    p.set_defaults(fn=cmd_deid)

    p = sub.add_parser("summarize", help="summarise a JSONL file offline with the daemon's pipeline (no daemon)")
    p.add_argument("--jsonl", type=Path, required=True, help='lines {"id", "text"[, "kind"]}')
    p.add_argument("--out", type=Path, required=True, help='output, lines {"id", "summary", "text"} or {"id", "error"}')
    p.add_argument("--model", type=Path, help="another GGUF file to try (default: the config's pinned model)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads with --model (default %(default)s)")
    p.add_argument("--n-gpu-layers", type=int, default=-1, help="GPU layers with --model (-1: all; 0: CPU only)")
    p.add_argument("--resume", action="store_true", help="keep --out and skip the ids it already holds")
    p.set_defaults(fn=cmd_summarize)
    return ap


class UsageError(Exception):
    """A user error the CLI answers with one line and exit code 2."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except (ApplianceError, UsageError) as e:
        print(f"appliancectl: {e}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as e:
        print(f"appliancectl: not JSON at line {e.lineno} column {e.colno} of the input ({e.msg}); one JSON object "
              "per line is expected", file=sys.stderr)
        return 2
    except KeyError as e:
        print(f"appliancectl: an input line lacks the field {e}; lines are {{\"id\", \"text\"[, \"kind\"]}}",
              file=sys.stderr)
        return 2
    except IsADirectoryError as e:
        print(f"appliancectl: {e.filename} is a directory; give a file", file=sys.stderr)
        return 2
    except (FileNotFoundError, FileExistsError, PermissionError) as e:
        print(f"appliancectl: {e}", file=sys.stderr)
        return 2
    except grpc.RpcError as e:
        if e.code() in _USER_ERRORS:  # the request named something wrong: one line, exit 2
            print(f"appliancectl: {e.details() or e.code().name}", file=sys.stderr)
            return 2
        print(f"appliancectl: {e.code().name}: {e.details()}", file=sys.stderr)
        if e.code() == grpc.StatusCode.UNAVAILABLE:
            print("appliancectl: is applianced running? (systemctl status appliance)", file=sys.stderr)
        return 1


# What the daemon answers about the request itself (a wrong id, field or role), not about itself.
_USER_ERRORS = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                          grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION,
                          grpc.StatusCode.ALREADY_EXISTS})


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (and exit code 2), pointing at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


if __name__ == "__main__":
    sys.exit(main())
