"""Who may submit: each TCP listener admits only the addresses its config names (loopback
included: any local account reaches 127.0.0.1), and MLLP over TLS with client certificates tells
one local account from another. Driven by third-party peers: python-hl7's mllp_send, dcmtk's
storescu, urllib for the metrics scrape; Python's ssl (OpenSSL) for MLLP over TLS."""
from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from appliance.config import MllpConfig, load_config
from appliance.services.intake import IntakeService
from conftest import start_daemon, stop_daemon
from mllp_client import FS, CR, VT, msa
from test_mllp import MLLP_SEND

SECRET = b"s" * 32
ADT = (b"MSH|^~\\&|HIS|GH|APPLIANCE|GH|20261207120000||ADT^A01|PERIM-1|P|2.5\r"
       b"PID|1||MRN777^^^GH^MR||DOE^JANE||19700101|F\r")


def _server(store, **cfg):
    from appliance.api.mllp import MllpServer

    server = MllpServer(MllpConfig(port=0, idle_timeout_s=5, frame_timeout_s=5, **cfg), IntakeService(store, SECRET))
    server.start()
    return server


def test_mllp_admits_only_the_listed_peers_and_an_empty_list_admits_no_one(store, tmp_path):
    msg = tmp_path / "adt.hl7"
    msg.write_bytes(ADT)
    for allowed, admitted in (((), False), (("10.255.255.1",), False), (("10.255.255.0/24", "127.0.0.0/8"), True)):
        server = _server(store, allowed_peers=allowed)
        try:
            r = subprocess.run([MLLP_SEND, "-p", str(server.port), "--loose", "-f", str(msg), "127.0.0.1"],
                               capture_output=True, timeout=60)
            acked = b"MSA|AA|PERIM-1" in r.stdout.replace(b"\n", b"\r")
            assert acked is admitted, (allowed, r.stdout, r.stderr)
            assert server.refused_connections == (0 if admitted else 1)
        finally:
            server.stop()


def _tls_send(port: int, ctx: ssl.SSLContext, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(VT + payload + FS + CR)
            data = b""
            while FS + CR not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data


def _client_ctx(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def test_the_daemon_admits_by_address_and_by_certificate_on_every_port(state, tmp_path):
    """One daemon: MLLP over mutual TLS for loopback senders; DICOM and metrics listing another
    address only. A local account without the hospital's client certificate submits nothing."""
    from appliance.cli.certs import init_pki, issue, make_ca
    from dicom_sr import make_sr

    pki = tmp_path / "pki"
    init_pki(pki, ("localhost", "127.0.0.1"), {"his-engine": "integration"})
    rogue = make_ca(tmp_path / "rogue", "Rogue CA")
    issue(tmp_path / "rogue", "intruder", "intruder", rogue.cert, rogue.key)
    text = state.read_text()
    text = text.replace("[mllp]\n", f'[mllp]\ntls_cert_file = "{pki / "server.pem"}"\ntls_key_file = "{pki / "server.key"}"\n'
                                    f'tls_client_ca_file = "{pki / "ca.pem"}"\n', 1)
    for section in ("dicom", "metrics"):
        head = f"[{section}]\n"
        body = text.split(head, 1)[1]
        text = text.replace(head + body, head + body.replace('allowed_peers = ["127.0.0.0/8", "::1"]',
                                                             'allowed_peers = ["10.255.255.1"]', 1), 1)
    state.write_text(text)
    cfg = load_config(state)
    assert cfg.dicom.allowed_peers == ("10.255.255.1",) and cfg.metrics.allowed_peers == ("10.255.255.1",)
    run = start_daemon(state, tmp_path / "d.log")
    try:
        port = cfg.mllp.port
        ca = pki / "ca.pem"
        ack = _tls_send(port, _client_ctx(ca, pki / "client-his-engine.pem", pki / "client-his-engine.key"), ADT)
        assert msa(ack.lstrip(VT).rstrip(FS + CR))[1] == "AA", ack
        for ctx in (_client_ctx(ca), _client_ctx(ca, tmp_path / "rogue" / "intruder.pem",
                                                 tmp_path / "rogue" / "intruder.key")):
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                got = _tls_send(port, ctx, ADT.replace(b"PERIM-1", b"PERIM-2"))
                if not got:  # TLS 1.3: the refusal can arrive as a closed stream after the handshake
                    raise ConnectionError("closed without an ACK")
        # Plain MLLP on the TLS port: python-hl7's sender gets no ACK.
        msg = tmp_path / "adt.hl7"
        msg.write_bytes(ADT.replace(b"PERIM-1", b"PERIM-3"))
        r = subprocess.run([MLLP_SEND, "-p", str(port), "--loose", "-f", str(msg), "127.0.0.1"],
                           capture_output=True, timeout=60)
        assert b"MSA|AA" not in r.stdout

        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            urllib.request.urlopen(f"http://127.0.0.1:{cfg.metrics.port}/metrics", timeout=10).read()
        if shutil.which("storescu"):
            sr = tmp_path / "sr.dcm"
            sr.write_bytes(make_sr())
            r = subprocess.run(["storescu", "-v", "-aec", "APPLIANCE", "-aet", "PACS1", "127.0.0.1", str(cfg.dicom.port),
                                str(sr)], capture_output=True, text=True, timeout=60)
            assert "Received Store Response (Success)" not in r.stdout + r.stderr
    finally:
        stop_daemon(run)
    log = (tmp_path / "d.log").read_text()
    assert "DICOM connection refused: 127.0.0.1 is not in dicom.allowed_peers" in log
    assert "metrics connection refused: 127.0.0.1 is not in metrics.allowed_peers" in log
    assert "TLS, client certificate required" in log


def test_allowed_peers_must_be_addresses_and_ports_may_not_clash(state):
    from appliance.errors import ConfigError

    text = state.read_text()
    bad = state.parent / "bad.toml"
    bad.write_text(text.replace('allowed_peers = ["127.0.0.0/8", "::1"]', 'allowed_peers = ["his-engine"]', 1))
    with pytest.raises(ConfigError, match=r"mllp\.allowed_peers.*'his-engine' is not an address"):
        load_config(bad)
    cfg = load_config(state)
    bad.write_text(text.replace(f"port = {cfg.dicom.port}\n", f"port = {cfg.mllp.port}\n", 1))
    with pytest.raises(ConfigError, match=rf"dicom\.port.*port {cfg.mllp.port} is also mllp\.port"):
        load_config(bad)
