"""The unit file is real: systemd's own analyzer verifies it and scores its hardening."""
from __future__ import annotations

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


def test_unit_is_notify_with_watchdog_and_no_network_beyond_loopback():
    text = UNIT.read_text()
    assert "Type=notify" in text and re.search(r"^WatchdogSec=\d+", text, re.M)
    assert "IPAddressDeny=any" in text and "IPAddressAllow=localhost" in text


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
