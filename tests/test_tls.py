"""Mutual TLS on the TCP port, with certificates made by openssl: a client signed by the
configured CA gets in; no certificate, another CA's certificate, or plaintext do not."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from conftest import start_daemon, stop_daemon

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed (make deps installs it)")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=d)


def _leaf(d: Path, name: str, ca: str, san: str) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", cwd=d)
    (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    d.mkdir()
    _ca(d, "hospital-ca")
    _ca(d, "rogue-ca")
    _leaf(d, "server", "hospital-ca", "DNS:localhost,IP:127.0.0.1")
    _leaf(d, "his-engine", "hospital-ca", "DNS:his-engine")
    _leaf(d, "intruder", "rogue-ca", "DNS:intruder")
    return d


def _health(port: int, creds: grpc.ChannelCredentials | None) -> bool:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    target = f"localhost:{port}"
    ch = grpc.secure_channel(target, creds) if creds else grpc.insecure_channel(target)
    try:
        r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        return r.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False
    finally:
        ch.close()


def test_mutual_tls_admits_only_clients_of_the_hospital_ca(state, tmp_path, pki):
    from appliance.config import load_config

    text = state.read_text().replace('unix_socket_mode = 0o660', 'unix_socket_mode = 0o660\n'
                                     f'tls_cert_file = "{pki / "server.pem"}"\n'
                                     f'tls_key_file = "{pki / "server.key"}"\n'
                                     f'tls_client_ca_file = "{pki / "hospital-ca.pem"}"')
    state.write_text(text)
    run = start_daemon(state, tmp_path / "d.log")
    try:
        port = load_config(state).grpc.port
        ca = (pki / "hospital-ca.pem").read_bytes()

        def creds(name: str | None) -> grpc.ChannelCredentials:
            if name is None:
                return grpc.ssl_channel_credentials(root_certificates=ca)
            return grpc.ssl_channel_credentials(root_certificates=ca, private_key=(pki / f"{name}.key").read_bytes(),
                                                certificate_chain=(pki / f"{name}.pem").read_bytes())

        assert _health(port, creds("his-engine"))
        assert not _health(port, creds(None))        # no client certificate
        assert not _health(port, creds("intruder"))  # signed by another CA
        assert not _health(port, None)               # plaintext
        # The local CLI goes through the unix socket and needs no certificate.
        from appliance.cli.main import main as ctl

        assert ctl(["--config", str(state), "documents"]) == 0
    finally:
        stop_daemon(run)


PROXYD = Path("/lib/systemd/systemd-socket-proxyd")


@pytest.mark.skipif(not shutil.which("systemd-socket-activate") or not PROXYD.exists(),
                    reason="systemd-socket-activate or systemd-socket-proxyd not installed")
def test_grpc_over_tcp_under_socket_activation_goes_through_the_proxy_still_mutual_tls(state, tmp_path, pki):
    """The package's gRPC port: the daemon has no network, systemd-socket-proxyd forwards the TCP
    connection byte for byte to the daemon's TLS unix socket. The client certificate still decides
    who it is, and such a client is remote: no re-identification, no status, though it came in on a
    unix socket."""
    import socket
    import time

    from appliance.config import load_config
    from appliance.v1 import appliance_pb2 as pb
    from appliance.v1 import appliance_pb2_grpc as pb_grpc
    from conftest import free_port, socket_activated

    text = state.read_text().replace('unix_socket_mode = 0o660', 'unix_socket_mode = 0o660\n'
                                     f'tls_cert_file = "{pki / "server.pem"}"\n'
                                     f'tls_key_file = "{pki / "server.key"}"\n'
                                     f'tls_client_ca_file = "{pki / "hospital-ca.pem"}"')
    text = text.replace("[access]\n", '[access]\ntls_subjects = { "his-engine" = ["integration", "clinician"] }\n', 1)
    state.write_text(text)
    cfg = load_config(state)
    log = (tmp_path / "d.log").open("w")
    daemon = socket_activated(state, log)
    tls_sock = cfg.state_dir / "run" / "grpc-tls.sock"
    gport = free_port()
    proxy = None
    try:
        deadline = time.monotonic() + 120
        while not tls_sock.exists():  # a first connection starts the daemon
            try:
                socket.create_connection(("127.0.0.1", cfg.mllp.port), timeout=1).close()
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "d.log").read_text()
            time.sleep(0.3)
        assert tls_sock.stat().st_mode & 0o777 == 0o600
        proxy = subprocess.Popen(["systemd-socket-activate", "-l", f"127.0.0.1:{gport}", str(PROXYD), str(tls_sock)],
                                 stdout=log, stderr=subprocess.STDOUT)
        ca = (pki / "hospital-ca.pem").read_bytes()
        creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=(pki / "his-engine.key").read_bytes(),
                                             certificate_chain=(pki / "his-engine.pem").read_bytes())
        deadline = time.monotonic() + 30
        while not _health(gport, creds):
            assert time.monotonic() < deadline, (tmp_path / "d.log").read_text()
            time.sleep(0.3)
        with grpc.secure_channel(f"localhost:{gport}", creds) as ch:
            stub = pb_grpc.ApplianceStub(ch)
            me = stub.WhoAmI(pb.WhoAmIRequest(), timeout=10)
            assert me.actor.startswith("cert:") and "his-engine" in me.actor and not me.local
            assert set(me.roles) == {"integration", "clinician"}
            for call, req in ((stub.GetStatus, pb.GetStatusRequest()),
                              (stub.Reidentify, pb.ReidentifyRequest(document_id="0" * 32))):
                with pytest.raises(grpc.RpcError) as e:
                    call(req, timeout=10)
                assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED, e.value.details()
        # Each refusal is in the audit log under the certificate's name (read on the local socket).
        ctl = subprocess.run([sys.executable, "-m", "appliance.cli.main", "--config", str(state), "audit", "export"],
                             capture_output=True, text=True, timeout=120)
        refused = [json.loads(x) for x in ctl.stdout.splitlines() if '"access.refused"' in x]
        assert any("his-engine" in r["actor"] and r["object_id"] == "re-identification" for r in refused), ctl.stdout
        intruder = grpc.ssl_channel_credentials(root_certificates=ca, private_key=(pki / "intruder.key").read_bytes(),
                                                certificate_chain=(pki / "intruder.pem").read_bytes())
        assert not _health(gport, intruder)
    finally:
        for p in (proxy, daemon):
            if p is not None:
                p.terminate()
                p.wait(30)
        log.close()
