"""The unit file is real: systemd's own analyzer verifies it and scores its hardening."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "appliance.service"
ANALYZE = shutil.which("systemd-analyze")


@pytest.fixture
def local_unit(tmp_path):
    """The shipped unit, pointed at this checkout's applianced (verify checks the binary exists)."""
    daemon = Path(sys.executable).parent / "applianced"
    text = UNIT.read_text().replace("/opt/appliance/venv/bin/applianced", str(daemon))
    text = text.replace("User=appliance", "User=root").replace("Group=appliance", "Group=root")
    p = tmp_path / "appliance.service"
    p.write_text(text)
    return p


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
def test_unit_verifies(local_unit):
    r = subprocess.run([ANALYZE, "verify", str(local_unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
def test_unit_is_hardened(local_unit):
    r = subprocess.run([ANALYZE, "security", "--offline=true", str(local_unit)], capture_output=True, text=True,
                       timeout=60)
    score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout).group(1))
    assert score <= 2.5, r.stdout[-2000:]


def test_unit_is_notify_with_watchdog_and_no_network_of_its_own():
    text = UNIT.read_text()
    assert "Type=notify" in text and re.search(r"^WatchdogSec=\d+", text, re.M)
    assert re.search(r"^PrivateNetwork=yes$", text, re.M) and re.search(r"^IPAddressDeny=any$", text, re.M)
    assert re.search(r"^RestrictAddressFamilies=AF_UNIX$", text, re.M)
    assert "IPAddressAllow" not in text  # nothing to allow: the ports are the socket unit's
    assert re.search(r"^Sockets=appliance.socket$", text, re.M)
    sock = (UNIT.parent / "appliance.socket").read_text()
    assert "IPAddressDeny=any" in sock and "IPAddressAllow=localhost" in sock


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
def test_socket_and_proxy_units_verify(local_unit, tmp_path):
    for name in ("appliance.socket", "appliance-grpc.socket", "appliance-grpc.service"):
        shutil.copy(UNIT.parent / name, local_unit.parent / name)
    r = subprocess.run([ANALYZE, "verify", *(str(local_unit.parent / n) for n in
                                            ("appliance.socket", "appliance-grpc.socket", "appliance-grpc.service"))],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_generator_writes_the_configs_ports_into_the_socket_units(state, tmp_path):
    """IT edits one file: the socket units' addresses come from it (systemd runs the generator at
    boot and on daemon-reload); gRPC over TCP only with TLS; a bad config writes nothing."""
    from appliance.cli.generator import main as generator
    from appliance.config import load_config

    cfg = load_config(state)
    out = tmp_path / "gen"
    assert generator([str(out), str(out), str(out), str(state)]) == 0
    listen = (out / "appliance.socket.d" / "50-listen.conf").read_text()
    assert re.findall(r"^ListenStream=(.*)$", listen, re.M) == [
        "", f"127.0.0.1:{cfg.mllp.port}", f"127.0.0.1:{cfg.dicom.port}", f"127.0.0.1:{cfg.metrics.port}"]
    assert str(state) in listen
    assert not (out / "appliance-grpc.socket.d").exists()  # no TLS configured: no gRPC over TCP
    text = state.read_text().replace('host = "127.0.0.1"\nport', 'host = "::1"\nport', 1)
    text = text.replace("[grpc]\n", '[grpc]\ntls_cert_file = "tls/server.pem"\ntls_key_file = "tls/server.key"\n', 1)
    state.write_text(text)
    out2 = tmp_path / "gen2"
    assert generator([str(out2), str(out2), str(out2), str(state)]) == 0
    grpc_listen = (out2 / "appliance-grpc.socket.d" / "50-listen.conf").read_text()
    assert re.findall(r"^ListenStream=(.*)$", grpc_listen, re.M) == ["", f"[::1]:{cfg.grpc.port}"]
    state.write_text("not toml [")
    out3 = tmp_path / "gen3"
    assert generator([str(out3), str(out3), str(out3), str(state)]) == 0 and not out3.exists()


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="systemd-socket-activate not installed")
def test_daemon_serves_the_sockets_systemd_passes(state, tmp_path):
    """Socket activation with systemd's own tool: the daemon binds nothing, serves MLLP, DICOM and
    metrics on the sockets it was given (matched by the config's ports), and the message that
    started it, sent before it was running, waits in the queue and is acknowledged."""
    import socket
    import time
    import urllib.request

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import socket_activated
    from mllp_client import MllpClient, msa

    from appliance.config import load_config

    cfg = load_config(state)
    log = (tmp_path / "daemon.log").open("w")
    proc = socket_activated(state, log)
    try:
        deadline = time.monotonic() + 10
        while True:  # systemd-socket-activate is listening once a connect succeeds
            try:
                socket.create_connection(("127.0.0.1", cfg.mllp.port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()
                time.sleep(0.1)
        msg = ("MSH|^~\\&|HIS|H|APP|A|20261201120000||ADT^A01|ACT-1|P|2.5\rEVN|A01|20261201120000\r"
               "PID|1||12345^^^H^MR||Doe^Jane||19600101|F\r")
        client = MllpClient(cfg.mllp.port, timeout=120)  # the daemon loads its model meanwhile
        ack = client.request(msg.encode())
        client.close()
        assert ack is not None and msa(ack)[1] == "AA", ack
        body = urllib.request.urlopen(f"http://127.0.0.1:{cfg.metrics.port}/metrics", timeout=10).read().decode()
        assert "appliance_" in body
        with socket.create_connection(("127.0.0.1", cfg.dicom.port), timeout=10) as s:
            s.sendall(b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00")  # A-RELEASE-RQ before any association
            assert s.recv(1)  # the DICOM listener answers (an A-ABORT): it is ours
        # It bound none of its TCP ports itself, and has no gRPC TCP port without TLS. (ports.json is
        # written once every listener is up, a moment after the first ones answer.)
        ports = cfg.state_dir / "run" / "ports.json"
        deadline = time.monotonic() + 30
        while not ports.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        status = json.loads(ports.read_text())
        assert status["grpc"] == 0
        out = (tmp_path / "daemon.log").read_text()
        assert "ready" in out and "Doe" not in out
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_daemon_notifies_ready_watchdog_and_stopping(state, tmp_path):
    """applianced speaks the sd_notify protocol (systemd-python) over a real datagram socket."""
    import os
    import socket
    import time

    sock_path = tmp_path / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(sock_path))
    s.settimeout(60)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen([sys.executable, "-m", "appliance.daemon", "--config", str(state)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    got: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("WATCHDOG=1" in g for g in got):
            got.append(s.recv(4096).decode())
        assert any(g.startswith("READY=1") for g in got)
        ready_at = next(i for i, g in enumerate(got) if g.startswith("READY=1"))
        assert any("WATCHDOG=1" in g for g in got[ready_at:])
        proc.terminate()
        while "STOPPING=1" not in got[-1]:
            got.append(s.recv(4096).decode())
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        s.close()


def test_device_reason_says_why_cpu_or_cuda(tmp_path):
    """The status line and metrics say cuda or cpu, and why, in words IT can act on."""
    from appliance.llm.engine import device_reason

    cpu_build = tmp_path / "cpu"
    cpu_build.mkdir()
    (cpu_build / "libggml-cpu.so").touch()
    cuda_build = tmp_path / "cuda"
    cuda_build.mkdir()
    (cuda_build / "libggml-cuda.so").touch()
    assert device_reason(0, True, cuda_build) == "model.n_gpu_layers = 0"
    assert device_reason(-1, True, cuda_build) == "CUDA build, GPU found"
    assert "no CUDA backend" in device_reason(-1, False, cpu_build)
    assert "no usable GPU" in device_reason(-1, False, cuda_build)


def test_check_config_names_the_file_and_the_model(state, tmp_path):
    """What postinst runs before it starts the service."""
    ok = subprocess.run([sys.executable, "-m", "appliance.daemon", "--check-config", "--config", str(state)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "valid" in ok.stdout, ok.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(re.sub(r'sha256 = "[0-9a-f]{64}"', 'sha256 = "' + "0" * 64 + '"', state.read_text()))
    r = subprocess.run([sys.executable, "-m", "appliance.daemon", "--check-config", "--config", str(bad)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and str(bad) in r.stderr and "model.sha256" in r.stderr, r.stderr
