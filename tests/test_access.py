"""Identity and roles, tested as a matrix over every RPC: no identity, integration, clinician and
admin certificates, another CA's certificate, an expired certificate, and the local socket's
kernel-proven identity; with the audit rows it produced. Certificates by `appliancectl certs init`."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from appliance.api.access import RPC_ROLES
from appliance.cli.certs import issue, make_ca
from conftest import start_daemon, stop_daemon

LOCAL_ONLY = {"Reidentify", "GetStatus", "ErasePatient", "Backup", "CheckStore", "VerifyAudit", "ExportAudit"}


def call(stub, name: str) -> grpc.StatusCode:
    from appliance.v1 import appliance_pb2 as pb

    requests = {
        "SubmitHL7": pb.SubmitHL7Request(), "SubmitDICOM": pb.SubmitDICOMRequest(),
        "GetDocument": pb.GetDocumentRequest(document_id="nope"), "ListDocuments": pb.ListDocumentsRequest(limit=1),
        "StreamSummary": pb.StreamSummaryRequest(document_id="nope"),
        "CancelSummary": pb.CancelSummaryRequest(document_id="nope"),
        "Reidentify": pb.ReidentifyRequest(document_id="nope", purpose=pb.TREATMENT),
        "ListDeadLetters": pb.ListDeadLettersRequest(limit=1),
        "ResubmitDeadLetter": pb.ResubmitDeadLetterRequest(dead_letter_id="nope"),
        "GetStatus": pb.GetStatusRequest(), "ErasePatient": pb.ErasePatientRequest(patient="X:none"),
        "Backup": pb.BackupRequest(name="matrix.db"), "CheckStore": pb.CheckStoreRequest(quick=True),
        "VerifyAudit": pb.VerifyAuditRequest(), "ExportAudit": pb.ExportAuditRequest(),
        "WhoAmI": pb.WhoAmIRequest(),
    }
    try:
        out = getattr(stub, name)(requests[name], timeout=20)
        if name in ("StreamSummary", "ExportAudit"):
            list(out)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


@pytest.fixture
def tls_daemon(state: Path, tmp_path: Path):
    pki = tmp_path / "pki"
    out = subprocess.run([sys.executable, "-m", "appliance.cli.main", "certs", "init", "--dir", str(pki),
                          "--client", "his-engine:integration", "--client", "dr-house:clinician",
                          "--client", "it-ops:admin"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    snippet = out.stdout.split("restart:\n", 1)[1]
    grpc_lines, access_lines = snippet.split("[access]")
    text = state.read_text()
    text = text.replace("[grpc]\n", grpc_lines.strip() + "\n", 1)
    text = text.replace("[access]\n", "[access]\n" + access_lines.strip() + "\n", 1)
    state.write_text(text)
    rogue = make_ca(tmp_path / "rogue", "Rogue CA")
    issue(tmp_path / "rogue", "client-x", "dr-house", rogue.cert, rogue.key)  # same CN, wrong CA
    issue(pki, "client-expired", "dr-house", pki / "ca.pem", pki / "ca.key",
          not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=30), days=1)
    run = start_daemon(state, tmp_path / "d.log")
    yield run, pki, tmp_path / "rogue"
    stop_daemon(run)


def _tls_stub(port: int, ca: Path, cert: Path, key: Path):
    from appliance.v1 import appliance_pb2_grpc as pb_grpc

    creds = grpc.ssl_channel_credentials(ca.read_bytes(), key.read_bytes(), cert.read_bytes())
    return pb_grpc.ApplianceStub(grpc.secure_channel(f"localhost:{port}", creds))


def test_role_matrix_over_every_rpc(tls_daemon):
    from appliance.api.transport import ticketed
    from appliance.config import load_config
    from appliance.store import open_store
    from appliance.v1 import appliance_pb2_grpc as pb_grpc

    run, pki, rogue = tls_daemon
    cfg = load_config(run.config)
    port, ca = cfg.grpc.port, pki / "ca.pem"
    sock = cfg.state_dir / cfg.grpc.unix_socket
    callers = {
        "no identity": pb_grpc.ApplianceStub(grpc.insecure_channel(f"unix:{sock}")),
        "integration": _tls_stub(port, ca, pki / "client-his-engine.pem", pki / "client-his-engine.key"),
        "clinician": _tls_stub(port, ca, pki / "client-dr-house.pem", pki / "client-dr-house.key"),
        "admin": _tls_stub(port, ca, pki / "client-it-ops.pem", pki / "client-it-ops.key"),
        "another CA": _tls_stub(port, ca, rogue / "client-x.pem", rogue / "client-x.key"),
        "expired": _tls_stub(port, ca, pki / "client-expired.pem", pki / "client-expired.key"),
        "local operator": pb_grpc.ApplianceStub(ticketed(grpc.insecure_channel(f"unix:{sock}"), sock)),
    }
    denied = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE}
    matrix: dict[tuple[str, str], grpc.StatusCode] = {}
    for who, stub in callers.items():
        for rpc in RPC_ROLES:
            matrix[(who, rpc)] = got = call(stub, rpc)
            if who == "no identity":
                want_in = got == grpc.StatusCode.UNAUTHENTICATED
            elif who in ("another CA", "expired"):
                want_in = got == grpc.StatusCode.UNAVAILABLE  # the TLS handshake refuses them
            elif who == "local operator":
                want_in = got not in denied  # root / the daemon's user: every role, on the local socket
            else:
                allowed = who in RPC_ROLES[rpc] and rpc not in LOCAL_ONLY
                want_in = (got not in denied) if allowed else got == grpc.StatusCode.PERMISSION_DENIED
            assert want_in, (who, rpc, got)
    stop_daemon(run)
    store = open_store(cfg.store.path, cfg.store.key_file)
    try:
        refused = store._query("SELECT actor, object_id, detail FROM audit WHERE action='access.refused'")
        reads = store._query("SELECT actor, detail FROM audit WHERE action='read'")
    finally:
        store.close()
    actors = {r[0] for r in refused}
    assert "anonymous" in actors and any(a.startswith("cert:CN=his-engine") for a in actors)
    assert any(a.startswith("cert:CN=dr-house") and d == "GetDocument" for a, d in reads)
    assert any(a.startswith("user:") for a, _ in reads)  # the local person, by name
    print(f"matrix: {len(matrix)} calls; {len(refused)} refusals audited; {len(reads)} reads audited")


def test_per_identity_rate_limit_answers_resource_exhausted_and_counts(state, tmp_path):
    import urllib.request

    from appliance.config import load_config
    from appliance.v1 import appliance_pb2 as pb

    text = state.read_text().replace("[access]\n", "[access]\nrate_per_s = 2\nrate_burst = 5\n", 1)
    state.write_text(text)
    run = start_daemon(state, tmp_path / "d.log")
    try:
        stub = run.stub()
        codes = []
        for _ in range(12):
            try:
                stub.ListDocuments(pb.ListDocumentsRequest(limit=1), timeout=10)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.append(e.code())
                assert "access.rate_per_s" in e.details()
        assert codes[:5] == [grpc.StatusCode.OK] * 5 and grpc.StatusCode.RESOURCE_EXHAUSTED in codes
        cfg = load_config(state)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{cfg.metrics.port}/metrics", timeout=10).read().decode()
        assert "appliance_rate_limited_total" in metrics and "appliance_rate_limited_total 0" not in metrics
    finally:
        stop_daemon(run)


def test_64_followers_do_not_stop_intake(state, tmp_path):
    """64 clients follow summaries while an HL7 stream is acknowledged at full rate: followers
    beyond grpc.max_followers are answered RESOURCE_EXHAUSTED at once, the others wait, and
    intake over MLLP and over gRPC goes on."""
    import threading
    import time

    from appliance.config import load_config
    from appliance.v1 import appliance_pb2 as pb
    from mllp_client import MllpClient, msa

    state.write_text(state.read_text().replace("[model]\n", "[model]\nsummarize_on_arrival = false\n", 1))
    run = start_daemon(state, tmp_path / "d.log")
    try:
        stub = run.stub()

        def oru(i: int) -> bytes:
            return (f"MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261201||ORU^R01|F-{i}|P|2.5.1\r"
                    f"PID|1||M{i}^^^GH^MR||Doe^Jan\rOBR|1|O|ACC-F{i}|71020^CXR^CPT\r"
                    f"OBX|1|TX|18782-3^Findings^LN||Small left effusion number {i}.||||||F\r").encode()

        docs = [stub.SubmitHL7(pb.SubmitHL7Request(message=oru(i)), timeout=30).results[0].document_id
                for i in range(64)]
        codes: list[grpc.StatusCode] = []
        calls = []

        def follow(doc_id: str) -> None:
            call = stub.StreamSummary(pb.StreamSummaryRequest(document_id=doc_id), timeout=120)
            calls.append(call)
            try:
                for _ in call:
                    pass
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.append(e.code())

        threads = [threading.Thread(target=follow, args=(d,), daemon=True) for d in docs]
        for t in threads:
            t.start()
        time.sleep(2)
        port = load_config(state).mllp.port
        c = MllpClient(port)
        t0 = time.monotonic()
        try:
            acks = [msa(c.request(oru(1000 + i)))[1] for i in range(200)]
        finally:
            c.close()
        mllp_rate = 200 / (time.monotonic() - t0)
        assert acks == ["AA"] * 200
        r = stub.SubmitHL7(pb.SubmitHL7Request(message=oru(5000)), timeout=10)  # a gRPC sender too
        assert r.results[0].outcome == pb.ACCEPTED
        refused = sum(1 for x in codes if x == grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert refused >= 64 - 24, codes
        for call in calls:
            call.cancel()
        print(f"64 followers: {refused} refused at once; MLLP acknowledged {mllp_rate:.0f} messages/s meanwhile")
    finally:
        stop_daemon(run)
