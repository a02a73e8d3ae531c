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
    with pytest.raises(StoreKeyError, match="audit log broken at entry 4"):
        store.verify_audit_chain()
    store.close()


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
    store = open_store(cfg.store.path, cfg.store.key_file)
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
