"""The walking skeleton through the real stack: applianced subprocess, real GGUF model,
real SQLCipher, real gRPC over loopback, a generated stub."""
from __future__ import annotations

import json
import re
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
from conftest import DATA, SAMPLE, stop_daemon

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


SAMPLE_FINDINGS = SAMPLE.parent / "oru_r01_xr_chest_findings.hl7"  # no IMPRESSION: the model words it


@pytest.mark.parametrize("report", [ORU, SAMPLE, SAMPLE_FINDINGS], ids=["nextgen-oru-cbc", "own-ct-chest", "own-xr-findings"])
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
        elif ev.HasField("final"):
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
        kept = structured["impression"]
        # Only lines that passed grounding are streamed, each whole, each one the stored summary keeps
        # (a summary finished before the stream opened comes as its final only; a follower that joins
        # late gets the lines so far in one piece).
        for _, piece in arrivals:
            assert piece.endswith("\n")
            for shown in piece.splitlines():
                assert shown.startswith("- ") and shown[2:] in kept, shown
        text = doc_text(stub, doc_id)
        for line in structured["lines"]:  # every line rests on spans of the de-identified text
            assert all(0 <= a < b <= len(text) for a, b in line["spans"])
        if report == SAMPLE:
            # The radiologist's conclusion leads, restated; its critical finding is marked as such.
            assert structured["impression_source"] == "conclusion" and final.tokens == 0
            assert kept[0].startswith("Enlarging spiculated right upper lobe nodule")
            assert structured["is_critical"] and final.text.startswith("CRITICAL: new malignancy")
            assert not any("phone" in line for line in kept)  # who was called is no finding
        else:
            # No conclusion: the real model words the impression from the positive findings.
            assert structured["impression_source"] == "model" and final.tokens > 0
            assert "effusion" in " ".join(kept).lower()

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
        assert not _contains("".join(t for _, t in arrivals), ident), "a PID identifier reached the stream"
        assert not _contains(daemon.output(), ident), "a PID identifier reached the log"

    db = load_config(daemon.config).store.path
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        sqlite3.connect(db).execute("SELECT * FROM sqlite_master").fetchall()
    raw = db.read_bytes()
    assert b"SQLite format 3" not in raw[:16]
    for ident in _pid_identifiers(report):
        assert ident.encode() not in raw


def test_appliancectl_commands_against_the_daemon(daemon):
    ctl = [sys.executable, "-m", "appliance.cli.main", "--config", str(daemon.config)]
    sub = subprocess.run(ctl + ["submit", str(SAMPLE)], capture_output=True, text=True, timeout=60)
    assert sub.returncode == 0, sub.stderr
    doc_id = sub.stdout.strip()
    follow = subprocess.run(ctl + ["summary", doc_id, "--follow"], capture_output=True, text=True, timeout=300)
    assert follow.returncode == 0 and follow.stdout.strip()
    assert "IMPRESSION:" in follow.stdout and "- Enlarging spiculated right upper lobe nodule" in follow.stdout
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


def test_appliancectl_summarize_gives_the_daemons_summary_for_the_same_document_and_config(daemon, tmp_path):
    """One code path: the daemon's worker and `appliancectl summarize --jsonl` with the same
    config (model, chronic-findings policy, context) write the same summary of the same text."""
    stub = daemon.stub()
    text = ("FINDINGS: There is a moderate right pleural effusion. Mildly hyperinflated lungs consistent with "
            "emphysema. No pneumothorax.")
    msg = ("MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261120143000||ORU^R01^ORU_R01|SAME-1|P|2.5.1\r"
           "PID|1||7301^^^GH^MR||Doe^Pat||19600101|F\rOBR|1|ORD9|ACC9|71020^CHEST XRAY^CPT\r"
           f"OBX|1|TX|18782-3^Study^LN||{text}||||||F\r").encode()
    doc_id = stub.SubmitHL7(pb.SubmitHL7Request(message=msg, source="test"), timeout=30).results[0].document_id
    final = [ev.final for ev in stub.StreamSummary(pb.StreamSummaryRequest(document_id=doc_id), timeout=300)
             if ev.HasField("final")][0]
    stored = doc_text(stub, doc_id)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": doc_id, "text": stored, "kind": "hl7:ORU^R01^ORU_R01"}) + "\n")
    ctl = [sys.executable, "-m", "appliance.cli.main", "--config", str(daemon.config)]
    run = subprocess.run(ctl + ["summarize", "--jsonl", str(src), "--out", str(out)], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    offline = json.loads(out.read_text())["summary"]
    online = json.loads(final.structured_json)
    assert offline["impression"] == online["impression"] and offline["model"] == online["model"]
    assert offline["impression_source"] == online["impression_source"] == "model"


def test_the_state_files_are_the_service_users_alone(daemon):
    """The database, its WAL and shared-memory files: 0600 whatever umask started the daemon."""
    import stat

    from appliance.config import load_config

    stub = daemon.stub()
    stub.SubmitHL7(pb.SubmitHL7Request(message=SAMPLE.read_bytes(), source="test"), timeout=30)
    state_dir = load_config(daemon.config).state_dir
    files = [p for p in state_dir.iterdir() if p.is_file() and p.name.startswith("appliance.db")]
    assert {p.name for p in files} >= {"appliance.db", "appliance.db-wal"}
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p.name, oct(p.stat().st_mode))
