"""Shared fixtures: a real state directory, a real daemon subprocess on free ports."""
from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "appliance" / "samples" / "oru_r01_ct_chest.hl7"


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free now, below the kernel's ephemeral range: a port the kernel hands out for bind
    port 0 may meanwhile become some client's source port, and the daemon then fails to bind
    (seen once in 870 tests)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]) \
        if Path("/proc/sys/net/ipv4/ip_local_port_range").exists() else 32768
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        if port in _HANDED_OUT:  # two calls in a row must not agree (nothing is bound in between)
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _HANDED_OUT.add(port)
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def store(tmp_path: Path):
    """A real SQLCipher store with a fresh random key."""
    from appliance.store import open_store
    from appliance.store.keys import write_new_key

    write_new_key(tmp_path / "k")
    s = open_store(tmp_path / "a.db", tmp_path / "k")
    yield s
    s.close()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state directory made by the real `appliancectl init`; returns the config path."""
    from appliance.cli.init import init_state, test_model_path

    # The smallest real model: the daemon tests are about the plumbing, bench/ measures quality.
    return init_state(tmp_path / "state", grpc_port=free_port(), mllp_port=free_port(),
                      dicom_port=free_port(), metrics_port=free_port(), model=test_model_path())


def intake_only_state(directory: Path) -> Path:
    """A real state directory (the smallest model) whose daemon writes no summary on arrival:
    for runs about intake and clients, where the model would only take the CPU."""
    from appliance.cli.init import init_state, test_model_path

    config = init_state(directory, grpc_port=free_port(), mllp_port=free_port(), dicom_port=free_port(),
                        metrics_port=free_port(), model=test_model_path())
    config.write_text(config.read_text().replace("[model]\n", "[model]\nsummarize_on_arrival = false\n", 1))
    return config


@dataclass
class Running:
    proc: subprocess.Popen
    config: Path
    port: int
    log: Path

    def channel(self) -> grpc.Channel:
        from appliance.config import load_config

        cfg = load_config(self.config)
        if cfg.grpc.tls_cert_file:  # the TCP port wants a certificate: tests use the local socket
            from appliance.api.transport import ticketed

            sock = cfg.state_dir / cfg.grpc.unix_socket
            return ticketed(grpc.insecure_channel(f"unix:{sock}"), sock)
        return grpc.insecure_channel(f"127.0.0.1:{self.port}")

    def stub(self):
        from appliance.v1 import appliance_pb2_grpc as pb_grpc

        return pb_grpc.ApplianceStub(self.channel())

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_daemon(config: Path, log: Path, timeout: float = 60.0) -> Running:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from appliance.config import load_config

    cfg = load_config(config)
    fh = log.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "appliance.daemon", "--config", str(config)], stdout=fh,
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    run = Running(proc, config, cfg.grpc.port, log)
    deadline = time.monotonic() + timeout
    with run.channel() as ch:
        health = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited {proc.returncode}: {run.output()}")
            try:
                r = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return run
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"daemon not SERVING within {timeout}s: {run.output()}")


def socket_activated(config: Path, log) -> subprocess.Popen:
    """applianced under systemd's own `systemd-socket-activate`, holding the config's MLLP, DICOM
    and metrics ports on loopback; the daemon starts at the first connection to one of them."""
    from appliance.config import load_config

    cfg = load_config(config)
    listen = [a for p in (cfg.mllp.port, cfg.dicom.port, cfg.metrics.port) for a in ("-l", f"127.0.0.1:{p}")]
    return subprocess.Popen(["systemd-socket-activate", *listen, sys.executable, "-m", "appliance.daemon",
                             "--config", str(config)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stop_daemon(run: Running) -> int:
    if run.proc.poll() is None:
        run.proc.terminate()
        try:
            run.proc.wait(30)
        except subprocess.TimeoutExpired:
            run.proc.kill()
            run.proc.wait()
    return run.proc.returncode


@pytest.fixture
def daemon(state: Path, tmp_path: Path):
    run = start_daemon(state, tmp_path / "daemon.log")
    yield run
    stop_daemon(run)
