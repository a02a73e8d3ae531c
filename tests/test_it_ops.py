"""What hospital IT does besides running the service: check a config before it goes live, see
who holds the keys, escrow them for an offline recovery key and recover them on a new machine,
and never find an "uncaught" line in the journal after a start that failed."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config import load_config
from conftest import free_port

ORU = Path(__file__).resolve().parent.parent / "appliance" / "samples" / "oru_r01_ct_chest.hl7"


def test_stop_is_safe_after_a_start_that_failed_at_any_step(state):
    from appliance.daemon import Daemon

    Daemon(load_config(state)).stop()  # never started: nothing to stop, nothing raised


def test_a_failed_start_says_why_in_one_line_and_nothing_uncaught(state, tmp_path):
    cfg = load_config(state)
    with socket.socket() as busy:  # the MLLP port taken by another program
        busy.bind(("127.0.0.1", cfg.mllp.port))
        busy.listen()
        r = subprocess.run([sys.executable, "-m", "appliance.daemon", "--config", str(state)],
                           capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert f"cannot bind MLLP to 127.0.0.1:{cfg.mllp.port} (config key mllp.port)" in out
    assert "uncaught" not in out.lower() and "Traceback" not in out and "AttributeError" not in out
    assert all(ch.isprintable() or ch in "\n\t" for ch in out), repr(out[-300:])


def test_check_config_says_when_the_ports_systemd_holds_are_older_than_the_file(state, tmp_path, monkeypatch):
    from appliance.api import activation
    from appliance.cli import generator
    from appliance.daemon import check_config

    generated = tmp_path / "generator"
    assert generator.main([str(generated), str(generated), str(generated), str(state)]) == 0
    dropin = (generated / "appliance.socket.d" / activation.DROPIN).read_text()
    assert "IPAddressAllow=\nIPAddressAllow=127.0.0.0/8 ::1\n" in dropin  # the kernel's filter: the same peers
    monkeypatch.setattr(activation.stale, "__defaults__", (generated,))  # systemd's /run/systemd/generator, here
    assert check_config(state) == 0
    cfg = load_config(state)
    state.write_text(state.read_text().replace(f"port = {cfg.mllp.port}\n", f"port = {free_port()}\n", 1))
    assert check_config(state) == 3  # valid, not in effect: apply-config
    assert check_config(state, sockets=False) == 0


def test_custody_reads_how_systemd_sealed_a_credential(tmp_path):
    from appliance.store.custody import custody, seal_of

    if shutil.which("systemd-creds") is None:
        pytest.skip("systemd-creds not installed")
    (tmp_path / "k").write_text("00" * 32 + "\n")
    r = subprocess.run(["systemd-creds", "encrypt", "--with-key=host", "--name=db.key", str(tmp_path / "k"),
                        str(tmp_path / "db.key.cred")], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        pytest.skip(f"systemd-creds cannot encrypt here: {r.stderr.strip()[-200:]}")
    assert seal_of(tmp_path / "db.key.cred") == "host"
    assert custody(tmp_path, ("db.key",)) == "host"
    assert custody(tmp_path, ("db.key", "deid.key")) == "file"  # the weakest of the set: deid.key is no credential


def test_escrowed_keys_open_the_database_on_a_new_machine_and_nothing_else_does(tmp_path):
    """The old machine's database copied to a new one, whose own keys cannot open it; the escrow
    (wrapped for an offline recovery key) puts the old keys back, and the documents and the audit
    chain are readable again. A wrong recovery key opens nothing."""
    from appliance.cli.init import init_state, test_model_path
    from appliance.cli.main import main as ctl
    from appliance.services.intake import IntakeService
    from appliance.store import open_store
    from appliance.store.keys import read_key

    model = test_model_path()
    old = init_state(tmp_path / "old", grpc_port=free_port(), mllp_port=free_port(), dicom_port=free_port(),
                     metrics_port=free_port(), model=model)
    cfg = load_config(old)
    store = open_store(cfg.store.path, cfg.store.key_file, cfg.store.audit_key_file)
    ids = [r.document_id for r in IntakeService(store, read_key(cfg.deid.secret_file, "deid")).submit(ORU.read_bytes(), transport="test")]
    store.audit("it-admin", "test.marker", "-", "")
    store.close()

    safe = tmp_path / "offline-safe"
    assert ctl(["escrow", "keygen", "--out-dir", str(safe)]) == 0
    assert (safe / "recovery.key").stat().st_mode & 0o777 == 0o600
    escrow_file = tmp_path / "escrow.json"
    assert ctl(["--config", str(old), "escrow", "export", "--recovery-cert", str(safe / "recovery.pub.pem"),
                "--out", str(escrow_file)]) == 0
    blob = escrow_file.read_text()
    for key in ("db.key", "deid.key", "audit.key"):
        assert (tmp_path / "old" / key).read_text().strip() not in blob  # wrapped, not copied

    new = init_state(tmp_path / "new", grpc_port=free_port(), mllp_port=free_port(), dicom_port=free_port(),
                     metrics_port=free_port(), model=model)
    ncfg = load_config(new)
    for suffix in ("", ".audit-head"):
        shutil.copy(str(cfg.store.path) + suffix, str(ncfg.store.path) + suffix)
    other = tmp_path / "other-safe"
    assert ctl(["escrow", "keygen", "--out-dir", str(other)]) == 0
    assert ctl(["--config", str(new), "escrow", "recover", str(escrow_file),
                "--recovery-key", str(other / "recovery.key")]) == 2  # not the key it was wrapped for
    assert ctl(["--config", str(new), "escrow", "recover", str(escrow_file),
                "--recovery-key", str(safe / "recovery.key")]) == 0
    for key in ("db.key", "deid.key", "audit.key"):
        assert (tmp_path / "new" / key).read_text() == (tmp_path / "old" / key).read_text()
        assert (tmp_path / "new" / key).stat().st_mode & 0o777 == 0o600
    store = open_store(ncfg.store.path, ncfg.store.key_file, ncfg.store.audit_key_file)
    try:
        assert store.get_document(ids[0]) is not None
        assert store.verify_audit_chain() >= 1
    finally:
        store.close()


def test_status_reports_key_custody(daemon, capsys):
    from appliance.cli.main import main as ctl

    assert ctl(["--config", str(daemon.config), "status", "--json"]) == 0  # the local socket: admin
    status = json.loads(capsys.readouterr().out)
    assert status["key"]["custody"] == "file" and "plain 0600 key files" in status["key"]["custody_means"]
    assert status["listeners"]["grpc"].startswith("127.0.0.1:") and not status["listeners"]["grpc"].endswith(":0")
