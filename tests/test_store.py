"""The encrypted store's audit log is a hash chain: any edit to a past entry is detected."""
from __future__ import annotations

import pytest

from appliance.errors import StoreKeyError
from appliance.store import open_store
from appliance.store.keys import write_new_key


def test_audit_chain_verifies_and_detects_tampering(tmp_path):
    write_new_key(tmp_path / "k")
    store = open_store(tmp_path / "a.db", tmp_path / "k")
    for i in range(5):
        store.audit("test", "document.received", f"doc{i}", f"phi_spans={i}")
    assert store.verify_audit_chain() == 5
    with store.transaction() as cur:
        cur.execute("UPDATE audit SET detail='phi_spans=0' WHERE object_id='doc3'")
    with pytest.raises(StoreKeyError, match="audit log broken at row 4: its content was modified"):
        store.verify_audit_chain()
    store.close()


def _keyed(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    write_new_key(tmp_path / "k")
    write_new_key(tmp_path / "audit.key")
    store = open_store(tmp_path / "a.db", tmp_path / "k", tmp_path / "audit.key")
    for i in range(6):
        store.audit("user:alice", "read", f"doc{i}", "GetDocument")
    return store


def _rewrite_consistently(store, recompute_from: int) -> None:
    """What someone holding the database key (not the audit key) can do: edit a row and
    recompute a bare SHA-256 chain from there on."""
    import hashlib

    with store.transaction() as cur:
        cur.execute("UPDATE audit SET actor='user:mallory' WHERE seq=?", (recompute_from,))
        rows = cur.execute("SELECT seq, ts_ms, actor, action, object_id, detail, prev_hash FROM audit WHERE seq>=? "
                           "ORDER BY seq", (recompute_from,)).fetchall()
        prev = rows[0][6]
        for seq, ts, actor, action, obj, detail, _ in rows:
            h = hashlib.sha256(f"{prev}|{ts}|{actor}|{action}|{obj}|{detail}".encode()).hexdigest()
            cur.execute("UPDATE audit SET prev_hash=?, hash=?, mac=0 WHERE seq=?", (prev, h, seq))
            prev = h


def test_keyed_audit_chain_names_the_first_bad_row(tmp_path):
    store = _keyed(tmp_path)
    assert store.verify_audit_chain() == 6
    _rewrite_consistently(store, 3)  # the holder of the database key recomputes: still detected
    with pytest.raises(StoreKeyError, match="row 3"):
        store.verify_audit_chain()
    store.close()


def test_keyed_audit_chain_detects_deletion_and_reordering(tmp_path):
    store = _keyed(tmp_path)
    with store.transaction() as cur:
        cur.execute("DELETE FROM audit WHERE seq=4")
    with pytest.raises(StoreKeyError, match="row 5: it does not follow"):
        store.verify_audit_chain()
    store.close()
    store = _keyed(tmp_path / "second")
    with store.transaction() as cur:  # swap two rows' places
        a = cur.execute("SELECT ts_ms, actor, action, object_id, detail, prev_hash, hash FROM audit WHERE seq=2").fetchone()
        b = cur.execute("SELECT ts_ms, actor, action, object_id, detail, prev_hash, hash FROM audit WHERE seq=3").fetchone()
        for seq, row in ((2, b), (3, a)):
            cur.execute("UPDATE audit SET ts_ms=?, actor=?, action=?, object_id=?, detail=?, prev_hash=?, hash=? "
                        "WHERE seq=?", (*row, seq))
    with pytest.raises(StoreKeyError, match="row 2"):
        store.verify_audit_chain()
    store.close()


def test_audit_verify_and_export_through_the_cli(daemon, tmp_path):
    import json
    import subprocess
    import sys

    ctl = [sys.executable, "-m", "appliance.cli.main", "--config", str(daemon.config)]
    from appliance.v1 import appliance_pb2 as pb

    daemon.stub().ListDocuments(pb.ListDocumentsRequest(limit=1), timeout=10)  # a read: audited
    ok = subprocess.run([*ctl, "audit", "verify"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stderr
    out = tmp_path / "audit.jsonl"
    r = subprocess.run([*ctl, "audit", "export", "--since", "2020-01-01", "--out", str(out)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows and {"seq", "ts_ms", "actor", "action", "object_id", "detail", "hash"} <= set(rows[0])


def test_rotate_key_reencrypts_everything_and_the_old_key_no_longer_opens(state, tmp_path):
    """Offline rotation through the real CLI: documents survive, the old key is refused, the
    audit chain records it, and a running daemon blocks it."""
    import shutil
    import subprocess
    import sys

    from appliance.config import load_config
    from conftest import SAMPLE, start_daemon, stop_daemon

    ctl = [sys.executable, "-m", "appliance.cli.main", "--config", str(state)]
    cfg = load_config(state)
    run = start_daemon(state, tmp_path / "d.log")
    try:
        assert subprocess.run(ctl + ["submit", str(SAMPLE)], capture_output=True, timeout=60).returncode == 0
        busy = subprocess.run(ctl + ["rotate-key"], capture_output=True, text=True, timeout=60)
        assert busy.returncode == 2 and "in use by another appliance process" in busy.stderr
    finally:
        stop_daemon(run)
    old_key = tmp_path / "old.key"
    shutil.copy(cfg.store.key_file, old_key)
    r = subprocess.run(ctl + ["rotate-key"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "1 documents kept" in r.stdout
    assert cfg.store.key_file.read_text() != old_key.read_text()
    assert cfg.store.key_file.stat().st_mode & 0o777 == 0o600
    with pytest.raises(StoreKeyError):
        open_store(cfg.store.path, old_key)
    store = open_store(cfg.store.path, cfg.store.key_file, cfg.store.audit_key_file)
    try:
        assert store.count_documents() == 1
        assert store.verify_audit_chain() >= 2  # intact, and the rotation is in it
        actions = [r[0] for r in store._query("SELECT action FROM audit ORDER BY seq")]
        assert actions[-1] == "store.key_rotated"
    finally:
        store.close()
    run = start_daemon(state, tmp_path / "d2.log")  # the daemon opens it with the new key
    assert stop_daemon(run) == 0
    # A crash between the database swap and the key swap: the error says where the key is.
    pending = cfg.store.key_file.with_name(cfg.store.key_file.name + ".new")
    shutil.move(cfg.store.key_file, pending)
    shutil.copy(old_key, cfg.store.key_file)
    with pytest.raises(StoreKeyError, match="rotation was interrupted"):
        open_store(cfg.store.path, cfg.store.key_file)


def test_rotate_key_with_the_packages_encrypted_credentials(state, tmp_path):
    """A package install keeps its keys as systemd-creds credentials: `rotate-key` decrypts them
    on tmpfs, writes the new key as a credential before the database is swapped, renames it over
    the old one after, and, run again after an interruption on either side of the swap, finishes
    with the data intact. No plaintext key is left behind."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from appliance.config import load_config
    from appliance.store.credentials import cred_path, decrypt, encrypt
    from conftest import SAMPLE, start_daemon, stop_daemon

    if shutil.which("systemd-creds") is None:
        pytest.skip("systemd-creds not installed")
    cfg = load_config(state)
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700)
    try:
        for name in ("db.key", "audit.key"):
            encrypt(state.parent / name, name, cred_path(creds, name))
    except StoreKeyError as e:
        pytest.skip(f"systemd-creds cannot encrypt on this machine: {e}")
    ctl = [sys.executable, "-m", "appliance.cli.main", "--config", str(state)]
    run = start_daemon(state, tmp_path / "d.log")
    try:
        assert subprocess.run(ctl + ["submit", str(SAMPLE)], capture_output=True, timeout=60).returncode == 0
    finally:
        stop_daemon(run)
    old_key = tmp_path / "old.key"
    shutil.move(cfg.store.key_file, old_key)  # from here on the key exists only as a credential
    before = cred_path(creds, "db.key").read_bytes()

    def rotate() -> subprocess.CompletedProcess[str]:
        return subprocess.run(ctl + ["rotate-key", "--credentials", str(creds)], capture_output=True, text=True,
                              timeout=180)

    def current_key() -> Path:
        out = tmp_path / f"clear-{len(list(tmp_path.glob('clear-*')))}"
        decrypt(cred_path(creds, "db.key"), "db.key", out)
        return out

    r = rotate()
    assert r.returncode == 0, r.stderr
    assert "1 documents kept" in r.stdout and "systemd-creds" in r.stdout
    assert cred_path(creds, "db.key").read_bytes() != before
    assert sorted(p.name for p in creds.iterdir()) == ["audit.key.cred", "db.key.cred"]
    assert not list(Path("/run").glob("appliance-keys.*"))  # the clear keys went with the rotation
    with pytest.raises(StoreKeyError):
        open_store(cfg.store.path, old_key)
    store = open_store(cfg.store.path, current_key())
    assert store.count_documents() == 1
    store.close()

    # Interrupted before the swap: a new key's credential that opens nothing is discarded.
    spare = tmp_path / "spare.key"
    write_new_key(spare)
    encrypt(spare, "db.key", cred_path(creds, "db.key.new"))
    assert rotate().returncode == 0
    assert not cred_path(creds, "db.key.new").exists()
    # Interrupted after the swap: only the pending credential opens the database; it is kept.
    shutil.copy(cred_path(creds, "db.key"), cred_path(creds, "db.key.new"))
    encrypt(spare, "db.key", cred_path(creds, "db.key"))
    r = rotate()
    assert r.returncode == 0, r.stderr
    store = open_store(cfg.store.path, current_key())
    assert store.count_documents() == 1
    store.close()


def test_finding_the_version_a_correction_replaces_is_one_index_seek(tmp_path):
    """A sender that re-sends one order's result many times must not make each new version scan
    all the earlier ones (measured: ORU intake fell to half before the index covered
    superseded_by)."""
    from appliance.store.db import CURRENT_VERSIONS

    write_new_key(tmp_path / "k")
    s = open_store(tmp_path / "db", tmp_path / "k")
    plan = " ".join(str(row[-1]) for row in s._query("EXPLAIN QUERY PLAN " + CURRENT_VERSIONS, ("p", "a", "b", "x")))
    assert "USING INDEX documents_ref (patient_ref=? AND document_ref=? AND superseded_by=?)" in plan, plan


def test_a_patients_identifiers_are_rewritten_only_when_a_message_adds_to_them(tmp_path, monkeypatch):
    """A feed re-sends the same identifiers with every ADT update: the patient's row is written
    when they add something (a new name, a new phone), or to keep "last heard of" (retention)
    within the hour, not once per message."""
    from appliance.domain import KnownIdentifiers, PersonName
    from appliance.store import db

    write_new_key(tmp_path / "k")
    s = open_store(tmp_path / "db", tmp_path / "k")
    clock = [1_000_000_000]
    monkeypatch.setattr(db, "now_ms", lambda: clock[0])
    first = KnownIdentifiers("MRN|1", patient_names=(PersonName("Whitaker", "Ann"),), phones=("555-0100",))

    def merge(known: KnownIdentifiers) -> tuple[int, KnownIdentifiers]:
        with s.transaction() as cur:
            s._merge_patient(cur, "ref1", known)
        [(updated, )] = s._query("SELECT updated_ms FROM patients WHERE patient_ref='ref1'")
        stored = s.patient_known("ref1")
        assert stored is not None
        return updated, stored

    assert merge(first) == (1_000_000_000, first)
    clock[0] += 60_000
    assert merge(KnownIdentifiers("MRN|1", phones=("555-0100",)))[0] == 1_000_000_000  # nothing new
    clock[0] += 60_000
    updated, stored = merge(KnownIdentifiers("MRN|1", phones=("555-0199",)))
    assert updated == clock[0] and stored.phones == ("555-0100", "555-0199")
    assert stored.patient_names == first.patient_names
    clock[0] += db.PATIENT_TOUCH_MS
    assert merge(first)[0] == clock[0]  # heard of again an hour later: retention sees it
    s.close()
