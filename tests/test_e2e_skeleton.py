"""The walking skeleton through the real stack: applianced subprocess, real GGUF model,
real SQLCipher, real gRPC over loopback, a generated stub."""
from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time

import grpc
import pytest

from appliance.config import load_config
from appliance.ingest.hl7.er7 import decode_message
from appliance.ingest.hl7.parse import parse
from appliance.v1 import appliance_pb2 as pb
from conftest import DATA, SAMPLE, start_daemon, stop_daemon

ORU = DATA / "hl7corpus" / "nextgen-connect" / "donkey_large.hl7"


def _pid_identifiers(path) -> list[str]:
    known = parse(decode_message(path.read_bytes())).known
    out = list(known.record_numbers) + list(known.phones)
    for n in known.patient_names:
        out += [n.family, n.given]
    return [x for x in out if len(x) >= 3]


def _contains(text: str, ident: str) -> bool:
    return re.search(r"(?<![A-Za-z0-9])" + re.escape(ident) + r"(?![A-Za-z0-9])", text, re.IGNORECASE) is not None


def doc_text(stub, doc_id: str) -> str:
    return stub.GetDocument(pb.GetDocumentRequest(document_id=doc_id), timeout=10).deidentified_text


@pytest.mark.parametrize("report", [ORU, SAMPLE], ids=["nextgen-oru-cbc", "own-ct-chest"])
def test_oru_in_streamed_summary_out_without_identifiers(daemon, report):
    stub = daemon.stub()
    resp = stub.SubmitHL7(pb.SubmitHL7Request(message=report.read_bytes(), source="test"), timeout=30)
    assert len(resp.results) == 1 and resp.results[0].outcome == pb.ACCEPTED
    doc_id = resp.results[0].document_id

    arrivals: list[tuple[float, str]] = []
    final = None
    for ev in stub.StreamSummary(pb.StreamSummaryRequest(document_id=doc_id), timeout=300):
        if ev.HasField("token"):
            arrivals.append((time.monotonic(), ev.token))
        else:
            final = ev.final
    assert final is not None and final.text.strip(), "no summary was stored"
    structured = json.loads(final.structured_json)
    assert structured["prompt_version"] and structured["model"] == final.model
    assert final.model.startswith("SmolLM2")
    if structured["kind"] == "lab":
        # Laboratory results: abnormal values copied exactly, no model asked (numbers are not its job).
        # (It is written at once, so it may be done before the stream starts: then only the final comes.)
        assert report == ORU and final.tokens == 0
        assert structured["abnormal"] and all(a["value"] in doc_text(stub, doc_id) for a in structured["abnormal"])
    else:
        assert final.tokens > 0
        # Incremental: several pieces, arriving over time.
        assert len(arrivals) >= 3
        assert arrivals[-1][0] - arrivals[0][0] > 0.05
        # The stream is the model's wording as written; the stored summary is its grounded, structured
        # rendering: every line the model streamed that survived grounding is in it.
        streamed = "".join(t for _, t in arrivals)
        kept = structured.get("impression") or [v for k in ("problems", "medication_changes", "follow_up")
                                                for v in structured.get(k, [])]
        assert kept and any(line.rstrip(".") in streamed or line in final.text for line in kept)

    doc = stub.GetDocument(pb.GetDocumentRequest(document_id=doc_id), timeout=10)
    assert doc.status == pb.SUMMARIZED
    # Every figure of the real model's summary is either in the report or flagged, never both.
    from appliance.llm.verify import _numbers, normalise

    in_report = {normalise(n) for _, n in _numbers(doc.deidentified_text)}
    flagged = set(final.unsupported_numbers)
    for _, n in _numbers(final.text):
        assert (n in flagged) == (normalise(n) not in in_report), n
    for ident in _pid_identifiers(report):
        assert not _contains(doc.deidentified_text, ident), "a PID identifier reached the stored text"
        assert not _contains(final.text, ident), "a PID identifier reached the summary"
        assert not _contains(daemon.output(), ident), "a PID identifier reached the log"

    db = load_config(daemon.config).store.path
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        sqlite3.connect(db).execute("SELECT * FROM sqlite_master").fetchall()
    raw = db.read_bytes()
    assert b"SQLite format 3" not in raw[:16]
    for ident in _pid_identifiers(report):
        assert ident.encode() not in raw


def test_health_and_reflection_list_the_service(daemon):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with daemon.channel() as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        resp = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        names = {s.name for s in resp.list_services_response.service}
    assert {"appliance.v1.Appliance", "grpc.health.v1.Health"} <= names


def test_malformed_hl7_is_invalid_argument_and_nothing_stored(daemon):
    stub = daemon.stub()
    bad = (DATA / "hl7corpus" / "cdc-trusted-intermediary" / "Test" / "Message" / "msh_present_but_missing_msh-9.hl7").read_bytes()
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitHL7(pb.SubmitHL7Request(message=bad), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "MSH-9" in err.value.details()
    assert len(stub.ListDocuments(pb.ListDocumentsRequest(), timeout=10).documents) == 0
    dead = stub.ListDeadLetters(pb.ListDeadLettersRequest(), timeout=10).dead_letters
    assert len(dead) == 1 and "MSH-9" in dead[0].reason


def test_empty_message_names_the_field(daemon):
    with pytest.raises(grpc.RpcError) as err:
        daemon.stub().SubmitHL7(pb.SubmitHL7Request(message=b""), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "message" in err.value.details()


def test_unknown_document_is_not_found(daemon):
    with pytest.raises(grpc.RpcError) as err:
        daemon.stub().GetDocument(pb.GetDocumentRequest(document_id="nope"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_wrong_key_exits_nonzero_naming_the_key_source(state, tmp_path):
    run = start_daemon(state, tmp_path / "first.log")  # creates the database with the right key
    assert stop_daemon(run) == 0
    key_file = load_config(state).store.key_file
    key_file.write_text("ab" * 32 + "\n")
    proc = subprocess.run([sys.executable, "-m", "appliance.daemon", "--config", str(state)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert str(key_file) in proc.stderr and "key" in proc.stderr


def test_a_port_in_use_exits_cleanly_naming_the_key(state):
    """Another program on the MLLP port: the daemon says which key to change and exits 2, with
    no crash report from stopping the parts that never started."""
    import socket

    port = load_config(state).mllp.port
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        proc = subprocess.run([sys.executable, "-m", "appliance.daemon", "--config", str(state)],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2  # a start-up error, as for a bad key or config
    assert "mllp.port" in proc.stderr and "address already in use" in proc.stderr
    assert "uncaught" not in proc.stderr and "Traceback" not in proc.stderr


def test_tampered_model_exits_naming_file_and_both_hashes(state, tmp_path):
    cfg = load_config(state)
    copy = tmp_path / "tampered.gguf"
    shutil.copy(cfg.model.path, copy)
    with copy.open("r+b") as f:
        f.seek(4096)
        b = f.read(1)
        f.seek(4096)
        f.write(bytes([b[0] ^ 0xFF]))
    text = state.read_text().replace(str(cfg.model.path), str(copy))
    state.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "appliance.daemon", "--config", str(state)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert str(copy) in proc.stderr
    assert cfg.model.sha256 in proc.stderr
    actual = re.search(r"SHA-256 ([0-9a-f]{64})", proc.stderr)
    assert actual and actual.group(1) != cfg.model.sha256


def test_appliancectl_commands_against_the_daemon(daemon):
    ctl = [sys.executable, "-m", "appliance.cli.main", "--config", str(daemon.config)]
    sub = subprocess.run(ctl + ["submit", str(SAMPLE)], capture_output=True, text=True, timeout=60)
    assert sub.returncode == 0, sub.stderr
    doc_id = sub.stdout.strip()
    follow = subprocess.run(ctl + ["summary", doc_id, "--follow"], capture_output=True, text=True, timeout=300)
    assert follow.returncode == 0 and follow.stdout.strip()
    assert "IMPRESSION:" in follow.stdout and "RADIOLOGIST'S IMPRESSION (as written)" in follow.stdout
    docs = subprocess.run(ctl + ["documents", "--json"], capture_output=True, text=True, timeout=60)
    assert '"status": "SUMMARIZED"' in docs.stdout and doc_id in docs.stdout
    text = subprocess.run(ctl + ["document", doc_id], capture_output=True, text=True, timeout=60).stdout
    assert "Whitaker" not in text and "spiculated nodule" in text


def test_unix_socket_serves_local_clients_with_its_file_mode(daemon):
    import stat

    cfg = load_config(daemon.config)
    sock = cfg.state_dir / cfg.grpc.unix_socket
    st = sock.stat()
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
    from appliance.v1 import appliance_pb2_grpc as pb_grpc

    from appliance.api.transport import ticketed

    with grpc.insecure_channel(f"unix:{sock}") as raw:
        with pytest.raises(grpc.RpcError) as e:  # no ticket: who is calling is unknown
            pb_grpc.ApplianceStub(raw).ListDocuments(pb.ListDocumentsRequest(limit=5), timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        docs = pb_grpc.ApplianceStub(ticketed(raw, sock)).ListDocuments(pb.ListDocumentsRequest(limit=5), timeout=10)
    assert list(docs.documents) == []


def test_reidentify_only_on_the_unix_socket_and_audited(daemon):
    from appliance.store import open_store
    from appliance.v1 import appliance_pb2_grpc as pb_grpc

    resp = daemon.stub().SubmitHL7(pb.SubmitHL7Request(message=SAMPLE.read_bytes()), timeout=30)
    doc_id = resp.results[0].document_id
    doc = daemon.stub().GetDocument(pb.GetDocumentRequest(document_id=doc_id), timeout=10)
    assert "Whitaker" not in doc.deidentified_text
    with pytest.raises(grpc.RpcError) as e:
        daemon.stub().Reidentify(pb.ReidentifyRequest(document_id=doc_id, purpose=pb.TREATMENT), timeout=10)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED and "unix socket" in e.value.details()
    cfg = load_config(daemon.config)
    from appliance.api.transport import ticketed

    sock = cfg.state_dir / cfg.grpc.unix_socket
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        stub = pb_grpc.ApplianceStub(ticketed(ch, sock))
        with pytest.raises(grpc.RpcError) as e:
            stub.Reidentify(pb.ReidentifyRequest(document_id=doc_id), timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "purpose" in e.value.details()
        r = stub.Reidentify(pb.ReidentifyRequest(document_id=doc_id, purpose=pb.TREATMENT), timeout=10)
    assert "Whitaker" in r.text and "1.4 cm" in r.text
    assert "Whitaker" not in daemon.output()
    stop_daemon(daemon)
    store = open_store(cfg.store.path, cfg.store.key_file)
    try:
        rows = store._query("SELECT action, object_id, detail FROM audit WHERE action='document.reidentified'")
    finally:
        store.close()
    assert rows == [("document.reidentified", doc_id, "purpose=TREATMENT")]
