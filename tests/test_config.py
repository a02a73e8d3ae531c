"""One TOML file -> frozen dataclasses; every error names the file and the key."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from appliance.config import load_config
from appliance.errors import ConfigError


def test_init_writes_a_working_config_with_0600_keys(state):
    cfg = load_config(state)
    assert cfg.grpc.host == "127.0.0.1" and len(cfg.model.sha256) == 64
    for key in (cfg.store.key_file, cfg.deid.secret_file):
        assert key.stat().st_mode & 0o777 == 0o600
    assert cfg.store.path.parent == cfg.state_dir
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.grpc.port = 1  # type: ignore[misc]


@pytest.mark.parametrize("old,new,key", [
    ("port = ", "port = \"fifty\" #", "grpc.port"),
    ("n_gpu_layers = -1", "n_gpu_layers = -5", "model.n_gpu_layers"),
    ("sha256 = \"", "sha256 = \"zz", "model.sha256"),
    ("[deid]", "[deid]\nsecrte_file = \"x\"", "deid.secrte_file"),
    ("n_threads = 1", "n_threads = 0", "model.n_threads"),
    ("enabled = true", "enabled = \"yes\"", "mllp.enabled"),
    ("ae_title = \"APPLIANCE\"", "ae_title = \"A VERY LONG AE TITLE\"", "dicom.ae_title"),
    ("calling_ae_titles = []", "calling_ae_titles = \"PACS1\"", "dicom.calling_ae_titles"),
    ("max_pdu_bytes = 1048576", "max_pdu_bytes = 10", "dicom.max_pdu_bytes"),
    ("unix_socket_mode = 0o660", "unix_socket_mode = 0o666", "grpc.unix_socket_mode"),
    ("unix_socket_mode = 0o660", "unix_socket_mode = 0o660\ntls_cert_file = \"server.pem\"", "grpc.tls_key_file"),
    ("unix_socket_mode = 0o660", "unix_socket_mode = 0o660\ntls_client_ca_file = \"ca.pem\"",
     "grpc.tls_client_ca_file"),
])
def test_errors_name_file_and_key(state, old, new, key):
    state.write_text(state.read_text().replace(old, new, 1))
    with pytest.raises(ConfigError) as e:
        load_config(state)
    assert str(state) in str(e.value) and f"[{key}]" in str(e.value)


def test_missing_file_and_bad_toml_are_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[grpc\nport=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_daemon_exits_nonzero_naming_the_key(state):
    state.write_text(state.read_text().replace("n_threads = 1", "n_threads = 0"))
    r = subprocess.run([sys.executable, "-m", "appliance.daemon", "--config", str(state)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "model.n_threads" in r.stderr and str(state) in r.stderr


def test_key_file_readable_by_others_is_refused(state, tmp_path):
    from appliance.errors import StoreKeyError
    from appliance.store import open_store

    cfg = load_config(state)
    cfg.store.key_file.chmod(0o644)
    with pytest.raises(StoreKeyError, match="chmod 600"):
        open_store(cfg.store.path, cfg.store.key_file)
