"""Data kept only as long as allowed, erased on request, backed up and restored, checked; and an
appliance IT can read at a glance. Freed pages are inspected by decrypting the database file
ourselves (AES-256-CBC, SQLCipher 4's page layout), so "deleted" means gone from the disk."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from appliance.services.intake import IntakeService
from appliance.store import open_store
from appliance.store.db import now_ms
from appliance.store.keys import read_key, write_new_key
from appliance.store.lifecycle import backup, check, erase_patient, purge, reclaim, restore, verify_backup

SECRET = b"r" * 32
PAGE, RESERVE = 4096, 80  # SQLCipher 4 defaults: 16-byte IV + 64-byte HMAC at the end of each page


def decrypted_pages(db: Path, key: bytes) -> bytes:
    """Every page of the file, decrypted, free pages included (what an attacker with the key and
    a disk image would read)."""
    raw = db.read_bytes()
    out = []
    for n in range(len(raw) // PAGE):
        page = raw[n * PAGE:(n + 1) * PAGE]
        start = 16 if n == 0 else 0  # page 1 begins with the salt
        iv = page[PAGE - RESERVE:PAGE - RESERVE + 16]
        dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        out.append(dec.update(page[start:PAGE - RESERVE]) + dec.finalize())
    return b"".join(out)


def oru(cid: str, mrn: str, family: str, phrase: str) -> bytes:
    return ("\r".join([
        f"MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261201||ORU^R01|{cid}|P|2.5.1",
        f"PID|1||{mrn}^^^GH^MR||{family}^Winifred||19480101|F",
        f"OBR|1|O|ACC-{cid}|71020^CXR^CPT",
        f"OBX|1|TX|18782-3^Findings^LN||{phrase} small left effusion, {family} tolerated well.||||||F"]) + "\r").encode()


@pytest.fixture
def keyed_store(tmp_path: Path):
    write_new_key(tmp_path / "db.key")
    s = open_store(tmp_path / "a.db", tmp_path / "db.key")
    yield s, read_key(tmp_path / "db.key", "t"), tmp_path / "a.db"
    try:
        s.close()
    except Exception:
        pass


def test_retention_purges_old_rows_and_leaves_no_text_in_freed_pages(keyed_store):
    store, key, path = keyed_store
    intake = IntakeService(store, SECRET)
    for i in range(40):
        r = intake.submit(oru(f"OLD-{i}", f"M{i:04d}", "Oldcastle", f"zebraold{i:03d}"), transport="grpc")[0]
        assert r.outcome == "ACCEPTED"
    for i in range(5):
        intake.submit(oru(f"NEW-{i}", f"N{i:04d}", "Newbury", f"zebranew{i:03d}"), transport="grpc")
    long_ago = now_ms() - 40 * 86_400_000
    with store.transaction() as cur:  # a clock the test controls: these arrived 40 days ago
        cur.execute("UPDATE documents SET received_ms=? WHERE message_key LIKE '%OLD-%'", (long_ago,))
        cur.execute("UPDATE raw_messages SET received_ms=? WHERE message_key LIKE '%OLD-%'", (long_ago,))
        cur.execute("UPDATE patients SET updated_ms=? WHERE patient_ref IN (SELECT patient_ref FROM documents "
                    "WHERE message_key LIKE '%OLD-%')", (long_ago,))
    reclaim(store)  # everything in the main file, so its size can be compared
    size_before = path.stat().st_size
    result = purge(store, days=30, audit_days=2190, batch=7)
    assert result.documents == 40 and result.raw_messages == 0  # raw rows went with their documents
    assert store.count_documents() == 5
    assert not store._query("SELECT 1 FROM patients WHERE known_json LIKE '%Oldcastle%'")
    assert store._query("SELECT detail FROM audit WHERE action='retention.purge'")
    store.close()
    pages = decrypted_pages(path, key)
    assert b"zebranew000" in pages  # the decryption is right: live text is found
    assert b"zebraold" not in pages and b"Oldcastle" not in pages  # nothing purged survives on disk
    assert path.stat().st_size < size_before  # freed pages returned (incremental vacuum)


def test_zero_retention_keeps_nothing_once_the_summary_is_done(keyed_store):
    store, _, _ = keyed_store
    intake = IntakeService(store, SECRET)
    a = intake.submit(oru("Z-1", "Z1", "Zeroth", "zebraz1"), transport="grpc")[0].document_id
    b = intake.submit(oru("Z-2", "Z2", "Zeroth", "zebraz2"), transport="grpc")[0].document_id
    with store.transaction() as cur:
        cur.execute("UPDATE documents SET status='SUMMARIZED' WHERE id=?", (a,))
    purge(store, days=0, audit_days=2190)
    ids = {r[0] for r in store._query("SELECT id FROM documents")}
    assert ids == {b}  # the one still waiting for its summary stays until it is delivered
    assert len(store._query("SELECT 1 FROM raw_messages")) == 1


def test_erasure_removes_one_patient_everywhere_and_audits_counts_only(keyed_store):
    store, key, path = keyed_store
    intake = IntakeService(store, SECRET)
    for i in range(3):
        intake.submit(oru(f"E-{i}", "MRN-ERASE1", "Eraseworth", f"zebraerase{i}"), transport="grpc")
    adt = (b"MSH|^~\\&|ADT|GH|APPLIANCE|GH|20261201||ADT^A08|E-ADT|P|2.5.1\r"
           b"PID|1||MRN-ERASE1^^^GH^MR||Eraseworth^Winifred||19480101|F|||1 Hidden Lane^^Bath\r")
    assert intake.submit(adt, transport="mllp")[0].outcome == "UPDATED"
    intake.submit(oru("K-1", "MRN-KEEP1", "Keepington", "zebrakeep"), transport="grpc")
    counts = erase_patient(store, intake.patient_ref("GH|MRN-ERASE1"), actor="test")
    assert counts == {"documents": 3, "patients": 1, "messages": 1}
    assert store.count_documents() == 1
    row = store._query("SELECT detail FROM audit WHERE action='patient.erased'")[0][0]
    assert "documents=3" in row and "MRN" not in row and "Eraseworth" not in row
    store.close()
    pages = decrypted_pages(path, key)
    assert b"zebrakeep" in pages
    for gone in (b"Eraseworth", b"zebraerase", b"MRN-ERASE1", b"Hidden Lane"):
        assert gone not in pages, gone


def test_backup_is_checked_and_restores_onto_another_machine(keyed_store, tmp_path):
    store, _, _ = keyed_store
    intake = IntakeService(store, SECRET)
    for i in range(6):
        intake.submit(oru(f"B-{i}", f"B{i}", "Backhouse", f"zebrab{i}"), transport="grpc")
    key = backup(store, tmp_path / "backups" / "one.db")
    assert verify_backup(tmp_path / "backups" / "one.db", key) == 6
    assert (tmp_path / "backups" / "one.db").stat().st_mode & 0o077 == 0
    with pytest.raises(Exception, match="wrong key"):
        verify_backup(tmp_path / "backups" / "one.db", "00" * 32)
    # A second machine: its own state directory and its own database key.
    other = tmp_path / "machine2"
    other.mkdir()
    write_new_key(other / "db.key")
    assert restore(tmp_path / "backups" / "one.db", key, other / "appliance.db", read_key(other / "db.key", "t")) == 6
    restored = open_store(other / "appliance.db", other / "db.key")
    try:
        assert restored.count_documents() == 6 and check(restored) == []
        assert restored.verify_audit_chain() > 0
    finally:
        restored.close()
    # A damaged backup is refused before anything is replaced.
    bad = tmp_path / "backups" / "bad.db"
    data = bytearray((tmp_path / "backups" / "one.db").read_bytes())
    data[5000] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(Exception):
        restore(bad, key, other / "appliance.db", read_key(other / "db.key", "t"))
    again = open_store(other / "appliance.db", other / "db.key")
    try:
        assert again.count_documents() == 6
    finally:
        again.close()


def test_status_check_erase_backup_restore_through_the_daemon(daemon, tmp_path):
    from conftest import SAMPLE, stop_daemon

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "appliance.cli.main", "--config", str(daemon.config), *args],
                              capture_output=True, text=True, timeout=300)

    assert ctl("submit", str(SAMPLE)).returncode == 0
    st = ctl("status", "--json")
    assert st.returncode == 0, st.stderr
    status = json.loads(st.stdout)
    assert status["model"]["device"] == "cpu" and status["model"]["sha256"]
    assert sum(status["documents_by_status"].values()) == 1 and status["listeners"]["mllp"]
    assert "Whitaker" not in st.stdout  # status is metadata only
    human = ctl("status").stdout
    assert "model" in human and "retention" in human and "egress" in human
    assert ctl("check").stdout.strip().endswith("ok")
    out = ctl("backup", "--name", "b1.db", "--key-out", str(tmp_path / "b1.key"))
    assert out.returncode == 0 and "checked" in out.stdout, out.stderr
    erased = ctl("erase", "--patient", "GH:MRN4471902", "--yes")
    assert "erased: 1 documents" in erased.stdout, erased.stdout + erased.stderr
    assert ctl("restore", str(tmp_path / "x"), "--key", "00").returncode != 0  # daemon running: refused
    stop_daemon(daemon)
    from appliance.config import load_config

    cfg = load_config(daemon.config)
    r = ctl("restore", str(cfg.state_dir / "backups" / "b1.db"), "--key-file", str(tmp_path / "b1.key"))
    assert r.returncode == 0 and "restored 1 documents" in r.stdout, r.stderr


def test_no_identifier_in_any_file_of_the_state_directory_or_the_log(daemon, tmp_path):
    """Every HL7 message and DICOM SR in tests/data through the daemon, a backup taken, then every
    file under the state directory (database, WAL, SHM, backups, run files) and the daemon's log
    searched for the patients' names and record numbers: zero hits."""
    import re

    from conftest import DATA, stop_daemon
    from appliance.config import load_config
    from appliance.ingest.dicom.read import parse_dicom
    from appliance.ingest.hl7.er7 import decode_message, split_batch
    from appliance.ingest.hl7.parse import parse
    from appliance.v1 import appliance_pb2 as pb

    import grpc

    stub = daemon.stub()
    words: set[str] = set()
    control_ids: set[str] = set()  # message ids, not identifiers; refusals name them
    for f in sorted(DATA.rglob("*.hl7")):
        raw = f.read_bytes()
        try:
            stub.SubmitHL7(pb.SubmitHL7Request(message=raw, source="corpus"), timeout=60)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT  # refused: kept as a dead letter
        try:
            for text in split_batch(decode_message(raw)):
                control_ids.add(text.split("\r")[0].split("|")[9] if text.count("|") > 9 else "")
                known = parse(text).known
                words |= {w for n in known.patient_names for w in (n.family, n.given) if len(w) >= 4}
                words |= {m for m in known.record_numbers if len(m) >= 6}
        except Exception:
            continue  # refused messages are kept (encrypted) as dead letters: searched all the same
    for f in sorted(DATA.rglob("*.dcm")):
        try:
            stub.SubmitDICOM(pb.SubmitDICOMRequest(file=f.read_bytes(), source="corpus"), timeout=60)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
        try:
            known = parse_dicom(f.read_bytes()).document.known
            words |= {w for n in known.patient_names for w in (n.family, n.given) if len(w) >= 4}
            words |= {m for m in known.record_numbers if len(m) >= 6}
        except Exception:
            continue
    words -= {"TEST", "Test", "test", "PATIENT", "Patient", "DOE", "Doe"} | control_ids  # not identifying
    assert len(words) > 50
    ctl = [sys.executable, "-m", "appliance.cli.main", "--config", str(daemon.config)]
    assert subprocess.run([*ctl, "backup", "--name", "scan.db", "--print-key"], capture_output=True,
                          timeout=300).returncode == 0
    stop_daemon(daemon)
    cfg = load_config(daemon.config)
    pattern = re.compile(b"(?<![A-Za-z0-9])(?:" + b"|".join(re.escape(w.encode()) for w in
                                                          sorted(words, key=len, reverse=True)) + b")(?![A-Za-z0-9])")
    hits = []
    for f in [*cfg.state_dir.rglob("*"), daemon.log]:
        if f.is_file() and f.suffix not in (".toml", ".key", ".gguf"):
            m = pattern.search(f.read_bytes())
            if m:
                hits.append((str(f), m.group(0)))
    assert not hits, hits[:5]


def test_the_audit_chain_travels_with_a_backup_and_its_removed_tail_is_detected(state, tmp_path):
    """A backup carries the audit key (encrypted with it), so a store restored into a new state
    directory verifies; backup and restore are recorded under the person; deleting the newest
    audit rows is caught by the head anchored at each export and verification."""
    import getpass

    from appliance.cli.init import init_state, test_model_path
    from appliance.config import load_config
    from conftest import SAMPLE, free_port, start_daemon, stop_daemon

    def ctl(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "appliance.cli.main", "--config", str(config), *args],
                              capture_output=True, text=True, timeout=300)

    run = start_daemon(state, tmp_path / "a.log")
    try:
        assert ctl(state, "submit", str(SAMPLE)).returncode == 0
        out = ctl(state, "backup", "--name", "carry.db", "--key-out", str(tmp_path / "carry.key"))
        assert out.returncode == 0, out.stderr
        rows = [json.loads(x) for x in ctl(state, "audit", "export").stdout.splitlines() if x.strip()]
        backup_rows = [r for r in rows if r["action"] == "store.backup"]
        assert backup_rows and backup_rows[-1]["actor"] not in ("backup", "system", ""), backup_rows
    finally:
        stop_daemon(run)
    # A new machine: its own state directory, database key and audit key.
    other = init_state(tmp_path / "machine2", grpc_port=free_port(), mllp_port=free_port(), dicom_port=free_port(),
                       metrics_port=free_port(), model=test_model_path())
    r = ctl(other, "restore", str(load_config(state).state_dir / "backups" / "carry.db"),
            "--key-file", str(tmp_path / "carry.key"))
    assert r.returncode == 0 and "audit chain's key came with it" in r.stdout, r.stdout + r.stderr
    run = start_daemon(other, tmp_path / "b.log")
    try:
        v = ctl(other, "audit", "verify")
        assert v.returncode == 0 and "intact" in v.stdout, v.stdout + v.stderr
        rows = [json.loads(x) for x in ctl(other, "audit", "export").stdout.splitlines() if x.strip()]
        restored = [r for r in rows if r["action"] == "store.restore"]
        assert restored and restored[-1]["actor"] == (os.environ.get("SUDO_USER") or getpass.getuser())
    finally:
        stop_daemon(run)
    # Someone with the database key deletes the newest rows: the anchored head shows it.
    cfg = load_config(other)
    store = open_store(cfg.store.path, cfg.store.key_file, cfg.store.audit_key_file)
    newest = store._query("SELECT max(seq) FROM audit")[0][0]
    with store.transaction() as cur:
        cur.execute("DELETE FROM audit WHERE seq >= ?", (newest - 1,))
    store._conn.close()  # not store.close(): that would anchor the truncated head
    run = start_daemon(other, tmp_path / "c.log")
    try:
        v = ctl(other, "audit", "verify")
        assert v.returncode == 1 and "newest rows were deleted" in v.stdout, v.stdout + v.stderr
    finally:
        stop_daemon(run)

