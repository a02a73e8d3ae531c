"""Bounds an input cannot move: escape bombs, overlong tokens and reports, poison documents,
and refusals an interface engine can correlate and act on (issue: intake that never freezes)."""
from __future__ import annotations

import random
import re
import string
import subprocess
import time
from pathlib import Path

import pytest

from appliance.deid import deidentify
from appliance.deid.engine import MAX_RUN
from appliance.domain import KnownIdentifiers
from appliance.ingest.hl7.ack import acks_for
from appliance.ingest.hl7.escape import MAX_SK, MAX_SP, unescape
from appliance.ingest.hl7.header import partial_header
from appliance.ingest.hl7.er7 import split_segments
from appliance.ingest.limits import MAX_REPORT_CHARS
from appliance.errors import InvalidMessage
from conftest import SAMPLE
from mllp_client import MllpClient, msa, trickle
from test_mllp import MLLP_SEND, mllp_port

SECRET = b"s" * 32


def oru(control_id: str, obx_text: str, pid: str = "PID|1||MRN77^^^GH^MR||Quill^Harriet||19600101|F") -> bytes:
    return ("\r".join([
        f"MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261201120000||ORU^R01|{control_id}|P|2.5.1",
        pid, f"OBR|1|O1|ACC-{control_id}|71020^CHEST XRAY^CPT",
        f"OBX|1|TX|18782-3^Study observation^LN||{obx_text}||||||F"]) + "\r").encode()


# -- escape expansion -------------------------------------------------------------------------
def test_formatting_escapes_are_capped_so_expansion_stays_linear():
    assert unescape("a\\.sp2000000\\b") == "a" + "\n" * MAX_SP + "b"
    assert unescape("a\\.sp1500000000\\b") == "a" + "\n" * MAX_SP + "b"
    assert unescape("a\\.sk99999\\b") == "a" + " " * MAX_SK + "b"
    assert unescape("a\\.sp" + "9" * 5000 + "\\b") == "a" + "\n" * MAX_SP + "b"  # no int() of 5,000 digits
    assert unescape("a\\.sp3\\b") == "a\n\n\nb"  # ordinary layout kept
    bomb = "x" + "\\.sp2000000\\" * 200
    assert len(unescape(bomb)) <= 1 + 200 * MAX_SP


# -- linear-time de-identification --------------------------------------------------------------
@pytest.mark.parametrize("unit", ["a", "A", "1", "a1", ".", "-", "@", "/", "a.b-c@1", "1.", ":", "(", "'",
                                  "Ab ", "1 ", "12/12 ", "Dr. Smith ", "a.b-c@1 "])
def test_deidentification_time_is_linear_in_length(unit):
    """Long runs of every character class: 4x the length costs about 4x the time, never 16x."""
    k = KnownIdentifiers()
    deidentify("warm up the models", k, SECRET)
    times = []
    for n in (10_000, 40_000):
        text = "Findings: " + (unit * (n // len(unit) + 1))[:n] + " end."
        best = float("inf")
        for _ in range(3):  # the best of three: the CPU this process got, not what others took
            t = time.process_time()
            deidentify(text, k, SECRET)
            best = min(best, time.process_time() - t)
        times.append(best)
    # Linear is 4x; quadratic would be 16x. The margin absorbs noise, not a change of order.
    assert times[1] < 8 * times[0] + 0.05, (unit, times)


def test_an_embedded_blob_is_removed_whole_and_quickly():
    random.seed(3)
    blob = "".join(random.choice(string.ascii_letters + string.digits + "+/") for _ in range(2_000_000))
    text = f"Small left effusion. Attachment: {blob} Call Dr. Quill."
    t = time.perf_counter()
    d = deidentify(text, KnownIdentifiers(), SECRET)
    assert time.perf_counter() - t < 20
    assert blob[:MAX_RUN] not in d.text and "2000000-character token removed" in d.text
    assert "Small left effusion." in d.text


# -- refusals an engine can correlate -------------------------------------------------------------
def test_refusal_of_a_header_without_msh9_echoes_msh10_and_says_why():
    text = "MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261201|||CTRL-9|P|2.3\rPID|1||M1\r"
    h = partial_header(split_segments(text)[0])
    err = InvalidMessage("MSH-9 (message type) missing", segment="MSH", field=9, hl7_error_code="101")
    ack = acks_for(h, False, err)[0].decode()
    fields = msa(ack.encode())
    assert fields[1] == "AR" and fields[2] == "CTRL-9" and "MSH-9" in fields[3]
    err_seg = next(s for s in ack.split("\r") if s.startswith("ERR"))
    assert err_seg.startswith("ERR|MSH^1^9^101&"), err_seg  # v2.3: ERR-1 is the error code and location


def test_v25_refusal_uses_the_v25_err_layout():
    text = "MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261201||ORU^R01|C1|P|2.5.1\r"
    h = partial_header(split_segments(text)[0])
    ack = acks_for(h, False, InvalidMessage("PID segment missing", segment="PID", hl7_error_code="100"))[0]
    err_seg = next(s for s in ack.decode().split("\r") if s.startswith("ERR"))
    assert err_seg.split("|")[1] == "" and err_seg.split("|")[3].startswith("100^")


# -- through the daemon, over MLLP, with the third-party client -----------------------------------
def test_bombs_and_blobs_are_answered_promptly_while_others_are_acknowledged(daemon, tmp_path: Path):
    port = mllp_port(daemon)
    bomb = oru("BOMB-1", "Report\\.sp2000000\\" * 200 + " small effusion")
    random.seed(5)
    blob = "".join(random.choice(string.ascii_letters + string.digits) for _ in range(2_000_000))
    long_token = oru("BLOB-1", f"Chest clear. {blob[:150_000]}")  # kept, the token removed whole
    huge_token = oru("BLOB-2", f"Chest clear. {blob}")  # over the report bound: refused
    too_long = oru("LONG-1", ("word " * (MAX_REPORT_CHARS // 5 + 10)).strip())
    c = MllpClient(port, timeout=60)
    try:
        for payload, code in ((bomb, "AA"), (long_token, "AA"), (huge_token, "AR"), (too_long, "AR")):
            t = time.monotonic()
            fields = msa(c.request(payload))
            assert fields[1] == code, fields
            assert time.monotonic() - t < 5, "acknowledgement took too long"
        assert "characters; the most accepted" in msa(c.request(too_long))[3]
    finally:
        c.close()
    # Another sender's ordinary message is acknowledged (third-party client) while those drain.
    f = tmp_path / "sample.hl7"
    f.write_bytes(SAMPLE.read_bytes())
    t = time.monotonic()
    r = subprocess.run([MLLP_SEND, "-p", str(port), "--loose", "-f", str(f), "127.0.0.1"], capture_output=True,
                       timeout=60)
    out = r.stdout.replace(b"\r", b"\n")
    assert (b"MSA|CA|" in out or b"MSA|AA|" in out) and time.monotonic() - t < 10, out


def test_no_report_text_is_refused_with_ar_not_ae(daemon):
    """AE tells an engine to resend; a message without text will never have any."""
    msg = (b"MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261201||ORU^R01|NOTEXT-1|P|2.5.1\r"
           b"PID|1||MRN1^^^GH^MR||Doe^Jo\rOBR|1|O1|A1|71020^CXR^CPT\r")
    c = MllpClient(mllp_port(daemon))
    try:
        fields = msa(c.request(msg))
    finally:
        c.close()
    assert fields[1] == "AR" and fields[2] == "NOTEXT-1" and "no report text" in fields[3]


def test_a_changed_message_under_a_reused_control_id_is_refused(daemon):
    c = MllpClient(mllp_port(daemon))
    try:
        assert msa(c.request(oru("REUSE-1", "Small left effusion.")))[1] == "AA"
        assert msa(c.request(oru("REUSE-1", "Small left effusion.")))[1] == "AA"  # a true resend
        fields = msa(c.request(oru("REUSE-1", "Large right pneumothorax.")))
    finally:
        c.close()
    assert fields[1] == "AR" and fields[2] == "REUSE-1" and "already used by a different message" in fields[3]


# -- a poison document is set aside alone ---------------------------------------------------------
def _accepted_for_deid(store, prefix: str, bodies: list[str]) -> None:
    """One ORU per body, acknowledged and committed, waiting for the de-identification stage."""
    from appliance.services.intake import IntakeService

    intake = IntakeService(store, SECRET)
    for i, body in enumerate(bodies):
        r = intake.commit_many([intake.prepare(oru(f"{prefix}-{i}", body).decode(), transport="mllp", deid_now=False)])[0]
        assert r.outcome == "ACCEPTED"


def test_a_document_whose_deidentification_raises_is_failed_alone(store, monkeypatch):
    from appliance.services import deid_stage as stage_mod

    _accepted_for_deid(store, "P", ["POISON here" if i == 2 else f"Report {i}: small effusion." for i in range(5)])
    real = stage_mod.deidentify

    def flaky(text, known, secret):
        if "POISON" in text:
            raise ValueError("boom with POISON text")
        return real(text, known, secret)

    monkeypatch.setattr(stage_mod, "deidentify", flaky)
    ready: list[str] = []
    stage = stage_mod.DeidStage(store, SECRET, ready.append)
    assert stage.drain() == 4 and stage.failed == 1
    assert stage.drain() == 0  # not claimed again
    counts = store.gauges()["documents"]
    assert counts.get("DEID_FAILED") == 1 and counts.get("RECEIVED") == 4
    audit = store._query("SELECT detail FROM audit WHERE action='document.deid_failed'")
    assert audit and "ValueError" in audit[0][0] and "POISON" not in audit[0][0]


def test_a_document_over_its_time_budget_is_failed_with_the_reason_and_the_rest_go_on(store, monkeypatch):
    """deid.time_budget_s: checked between the (linear) stages; a document over it is failed, says
    why, and is not claimed again; the documents behind it are de-identified."""
    import time

    from appliance.deid import engine
    from appliance.services import deid_stage as stage_mod

    _accepted_for_deid(store, "B", ["SLOW report: small effusion." if i == 1 else f"Report {i}: small effusion."
                                    for i in range(4)])
    real = engine.dictionary_spans

    def slow_stage(text):  # stands for a stage that takes long on one input
        if "SLOW" in text:
            time.sleep(0.5)
        return real(text)

    monkeypatch.setattr(engine, "dictionary_spans", slow_stage)
    engine.default_tagger()  # loaded once per process: not a document's time
    stage = stage_mod.DeidStage(store, SECRET, lambda _id: None, time_budget_s=0.2)
    assert stage.drain() == 3 and stage.failed == 1
    assert stage.drain() == 0
    audit = store._query("SELECT detail FROM audit WHERE action='document.deid_failed'")
    assert audit and "deid.time_budget_s" in audit[0][0] and "SLOW" not in audit[0][0]


# -- several patients in one ORU ------------------------------------------------------------------
TWO_PATIENTS = "\r".join([
    "MSH|^~\\&|LAB|GH|APPLIANCE|GH|20261201120000||ORU^R01|MULTI-1|P|2.5.1",
    "PID|1||MRN1001^^^GH^MR||Thornbury^Agatha||19500202|F",
    "OBR|1|O1|ACC-1|71020^CHEST XRAY^CPT",
    "OBX|1|TX|18782-3^Findings^LN||Agatha Thornbury has a small left effusion.||||||F",
    "PID|2||MRN2002^^^GH^MR||Pemberton^Lucius||19610303|M",
    "OBR|1|O2|ACC-2|71020^CHEST XRAY^CPT",
    "OBX|1|TX|18782-3^Findings^LN||Lucius Pemberton: right upper lobe nodule, MRN2002.||||||F",
]) + "\r"


def test_an_oru_with_two_patients_becomes_two_documents_each_scrubbed_with_its_own_ids(daemon):
    from appliance.v1 import appliance_pb2 as pb

    stub = daemon.stub()
    results = stub.SubmitHL7(pb.SubmitHL7Request(message=TWO_PATIENTS.encode()), timeout=30).results
    assert len(results) == 2 and all(r.outcome == pb.ACCEPTED for r in results)
    assert results[0].document_id != results[1].document_id
    texts = [stub.GetDocument(pb.GetDocumentRequest(document_id=r.document_id), timeout=10).deidentified_text
             for r in results]
    assert "effusion" in texts[0] and "nodule" not in texts[0]
    assert "nodule" in texts[1] and "effusion" not in texts[1]
    for t in texts:
        for word in ("Thornbury", "Agatha", "Pemberton", "Lucius", "MRN2002", "MRN1001"):
            assert word not in t, (word, t)
    # Each is filed under its own patient.
    from appliance.config import load_config
    from appliance.store import open_store

    stop = __import__("conftest").stop_daemon
    stop(daemon)
    cfg = load_config(daemon.config)
    store = open_store(cfg.store.path, cfg.store.key_file)
    try:
        refs = {r[0] for r in store._query("SELECT patient_ref FROM documents WHERE message_key LIKE '%MULTI-1'")}
    finally:
        store.close()
    assert len(refs) == 2


# -- bounded connections ---------------------------------------------------------------------------
def _with(config: Path, section: str, **values: int) -> None:
    """Set keys of one section of the config (replacing a key the file already has)."""
    text = config.read_text()
    head = f"[{section}]\n"
    start = text.index(head) + len(head)
    end = text.find("\n[", start)
    end = len(text) if end < 0 else end + 1
    body = text[start:end]
    for k in values:
        body = re.sub(rf"(?m)^{k}\s*=.*\n", "", body)
    extra = "".join(f"{k} = {v}\n" for k, v in values.items())
    config.write_text(text[:start] + extra + body + text[end:])


def test_idle_and_excess_connections_are_closed_and_memory_stays_bounded(state, tmp_path):
    import socket

    import psutil

    from conftest import start_daemon, stop_daemon

    _with(state, "mllp", max_connections=8, idle_timeout_s=2, frame_timeout_s=2)
    _with(state, "dicom", max_associations=4, artim_timeout_s=2, idle_timeout_s=2)
    run = start_daemon(state, tmp_path / "d.log")
    try:
        from appliance.config import load_config

        cfg = load_config(state)
        rss_before = psutil.Process(run.proc.pid).memory_info().rss
        mllp = [socket.create_connection(("127.0.0.1", cfg.mllp.port), timeout=10) for _ in range(500)]
        dicom = [socket.create_connection(("127.0.0.1", cfg.dicom.port), timeout=10) for _ in range(50)]
        for i, s in enumerate(mllp[:8]):  # half a frame on a few: the frame timeout applies
            if i % 2:
                s.sendall(b"\x0bMSH|^~\\&|" + b"x" * 100_000)
        for s in dicom[:2]:  # half an A-ASSOCIATE-RQ: the ARTIM timer applies
            s.sendall(b"\x01\x00\x00\x00")
        deadline = time.monotonic() + 60  # timeouts are 2 s; the margin is for a loaded CI machine
        for s in mllp + dicom:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                while s.recv(65536):
                    pass  # an A-ABORT may come first; then the close
            except (TimeoutError, ConnectionResetError):
                pass
        assert time.monotonic() < deadline, "some connections were held open"
        for s in mllp + dicom:
            s.close()
        # The appliance still answers, and has not grown with the connections it was offered.
        c = MllpClient(cfg.mllp.port)
        try:
            assert msa(c.request(oru("AFTER-1", "Small left effusion.")))[1] == "AA"
        finally:
            c.close()
        grown = psutil.Process(run.proc.pid).memory_info().rss - rss_before
        assert grown < 150 * 1024 * 1024, grown
        metrics = __import__("urllib.request").request.urlopen(
            f"http://127.0.0.1:{cfg.metrics.port}/metrics", timeout=10).read().decode()
        refused = re.search(r"appliance_mllp_connections_refused_total (\d+)", metrics)
        # Most of the 550 were over the limit on arrival; on a loaded machine, opening them takes
        # longer than the 2 s idle timeout, so some early ones close and free their slots.
        assert refused and int(refused.group(1)) >= 250, metrics[-3000:]
        assert "appliance_dicom_connections_timed_out_total" in metrics
    finally:
        stop_daemon(run)


# -- result status: preliminary, final, corrected, cancelled --------------------------------------
def _result_msg(control_id: str, status: str, finding: str) -> bytes:
    return ("\r".join([
        f"MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261201120000||ORU^R01|{control_id}|P|2.5.1",
        "PID|1||MRN5005^^^GH^MR||Ashdown^Cecily||19550505|F",
        "OBR|1|ORD9|ACC-9001|71020^CHEST XRAY^CPT" + "|" * 21 + status,
        f"OBX|1|TX|18782-3^Findings^LN||{finding}||||||{status}"]) + "\r").encode()


def test_a_corrected_result_supersedes_the_preliminary_and_its_summary_is_stale(daemon):
    from appliance.v1 import appliance_pb2 as pb

    stub = daemon.stub()
    first = stub.SubmitHL7(pb.SubmitHL7Request(message=_result_msg("RS-1", "P", "Small left effusion.")),
                           timeout=30).results[0]
    doc = stub.GetDocument(pb.GetDocumentRequest(document_id=first.document_id), timeout=10)
    assert doc.result_status == "preliminary"
    old_summary = [e for e in stub.StreamSummary(pb.StreamSummaryRequest(document_id=first.document_id), timeout=300)
                   if e.HasField("final")]
    assert old_summary and not old_summary[-1].final.stale
    second = stub.SubmitHL7(pb.SubmitHL7Request(message=_result_msg("RS-2", "C", "Large left effusion.")),
                            timeout=30).results[0]
    new = stub.GetDocument(pb.GetDocumentRequest(document_id=second.document_id), timeout=10)
    assert new.result_status == "corrected"
    old = stub.GetDocument(pb.GetDocumentRequest(document_id=first.document_id), timeout=10)
    assert old.status == pb.SUPERSEDED and old.superseded_by == second.document_id
    again = [e for e in stub.StreamSummary(pb.StreamSummaryRequest(document_id=first.document_id), timeout=60)
             if e.HasField("final")]
    assert again and again[-1].final.stale  # the old summary is served, marked stale
    cancelled = stub.SubmitHL7(pb.SubmitHL7Request(message=_result_msg("RS-3", "X", "Result cancelled.")),
                               timeout=30).results[0]
    c = stub.GetDocument(pb.GetDocumentRequest(document_id=cancelled.document_id), timeout=10)
    assert c.result_status == "cancelled" and c.status == pb.CANCELLED
    assert stub.GetDocument(pb.GetDocumentRequest(document_id=second.document_id), timeout=10).status == pb.SUPERSEDED


def test_result_status_reads_obr25_then_obx11():
    from appliance.ingest.hl7.parse import parse

    for code, want in (("P", "preliminary"), ("F", "final"), ("C", "corrected"), ("X", "cancelled")):
        parsed = parse(_result_msg(f"S-{code}", code, "Clear lungs.").decode())
        assert parsed.document.result_status == want
    head, _, _ = _result_msg("S-N", "", "Clear lungs.").decode().rpartition("OBX")
    no_obr25 = head + "OBX|1|TX|18782-3^Findings^LN||Clear lungs.||||||P\r"
    assert parse(no_obr25).document.result_status == "preliminary"


# -- feeds engines really send ----------------------------------------------------------------------
@pytest.mark.parametrize("event", ["A02", "A03", "A11", "A13", "A28"])
def test_adt_events_the_appliance_does_not_use_are_accepted_not_refused(store, event):
    from appliance.services.intake import IntakeService

    msg = (f"MSH|^~\\&|ADT|GH|APPLIANCE|GH|20261201||ADT^{event}|EV-{event}|P|2.5.1\r"
           "PID|1||MRN6006^^^GH^MR||Fairweather^Ottoline||19700707|F\rPV1|1|I\r")
    r = IntakeService(store, SECRET).submit(msg.encode(), transport="mllp")[0]
    assert r.outcome == "UPDATED" and b"MSA|AA|EV-" + event.encode() in r.acks[0]
    assert store.gauges()["documents"] == {}


def test_hl7_xml_is_named_for_what_it_is(store):
    from appliance.services.intake import IntakeService

    xml = b'<?xml version="1.0"?><ORU_R01 xmlns="urn:hl7-org:v2xml"><MSH><MSH.1>|</MSH.1></MSH></ORU_R01>'
    r = IntakeService(store, SECRET).submit(xml, transport="mllp")[0]
    assert r.outcome == "REJECTED" and "XML" in r.reason and "ER7" in r.reason


# -- DICOM: an SR with only a title; a C-STORE on the wrong presentation context -------------------
def test_an_sr_with_only_its_title_and_headings_is_refused():
    from io import BytesIO

    import pydicom

    from appliance.ingest.dicom.read import parse_dicom
    from dicom_sr import make_sr

    ds = pydicom.dcmread(BytesIO(make_sr()))
    for section in ds.ContentSequence:
        if "ContentSequence" in section:
            del section.ContentSequence  # headings left, no finding or impression
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    with pytest.raises(InvalidMessage, match="only its title or headings"):
        parse_dicom(buf.getvalue())


def test_a_c_store_whose_sop_class_does_not_match_its_context_is_refused_unparsed(daemon):
    import socket
    import struct

    from appliance.api.dicom import decode_command, encode_command
    from dicom_client import associate_rq, pdu, read_pdu
    from test_dicom import dicom_port

    ct_image = "1.2.840.10008.5.1.4.1.1.2"

    def uid(v: str) -> bytes:
        b = v.encode()
        return b + b"\0" if len(b) % 2 else b

    cmd = encode_command([(0x0002, uid(ct_image)), (0x0100, struct.pack("<H", 1)), (0x0110, struct.pack("<H", 7)),
                          (0x0700, struct.pack("<H", 0)), (0x0800, struct.pack("<H", 0)),
                          (0x1000, uid("1.2.3.4"))])
    with socket.create_connection(("127.0.0.1", dicom_port(daemon)), timeout=10) as s:
        s.sendall(associate_rq("APPLIANCE"))  # Verification only
        assert read_pdu(s)[0] == 0x02
        s.sendall(pdu(0x04, struct.pack(">IBB", len(cmd) + 2, 1, 3) + cmd))
        s.sendall(pdu(0x04, struct.pack(">IBB", 8 + 2, 1, 2) + bytes(8)))  # a (pretend) image dataset
        kind, body = read_pdu(s)
    assert kind == 0x04
    rsp = decode_command(body[6:])
    assert struct.unpack("<H", rsp[0x0900])[0] == 0x0122
    assert b"does not match presentation context" in rsp[0x0902]


# -- DICOM: reports sent as Encapsulated PDF ---------------------------------------------------------
def test_an_encapsulated_pdf_report_is_stored_deidentified_through_storescu(daemon, tmp_path):
    import shutil

    from dicom_sr import make_encapsulated_pdf, make_pdf
    from test_dicom import dicom_port, storescu
    from test_mllp import wait_deidentified

    if not shutil.which("storescu"):
        pytest.skip("dcmtk not installed")
    from appliance.v1 import appliance_pb2 as pb

    pdf = make_pdf(["CT CHEST. Patient Eleanor Whitaker, MRN4471902.", "FINDINGS: 2.1 cm spiculated nodule, "
                    "right upper lobe.", "IMPRESSION: Suspicious nodule. Recommend PET-CT."])
    f = tmp_path / "report.dcm"
    f.write_bytes(make_encapsulated_pdf(pdf))
    r = storescu(dicom_port(daemon), f)
    assert "Received Store Response (Success)" in r.stdout + r.stderr, r.stdout + r.stderr
    doc = daemon.stub().ListDocuments(pb.ListDocumentsRequest(limit=5), timeout=10).documents[0]
    assert doc.kind == "dicom:Encapsulated PDF"
    text = wait_deidentified(daemon, doc.id).deidentified_text
    assert "spiculated nodule" in text and "Whitaker" not in text and "MRN4471902" not in text

    scan = tmp_path / "scan.dcm"
    scan.write_bytes(make_encapsulated_pdf(make_pdf([])))  # a page image: no text layer
    r = storescu(dicom_port(daemon), scan)
    assert "CannotUnderstand" in r.stdout + r.stderr  # 0xC000: will never pass as sent
    reasons = [d.reason for d in daemon.stub().ListDeadLetters(pb.ListDeadLettersRequest(limit=5), timeout=10).dead_letters]
    assert any("no text layer" in x for x in reasons), reasons


def test_dicom_over_tls_admits_only_the_hospital_cas_pacs(state, tmp_path):
    """The DICOM TLS profile with dcmtk's storescu: a PACS certificate the configured CA signed
    stores; plain TCP and another CA's certificate do not."""
    import shutil
    import subprocess

    from appliance.cli.certs import init_pki, issue, make_ca
    from conftest import start_daemon, stop_daemon
    from dicom_sr import make_sr

    if not shutil.which("storescu"):
        pytest.skip("dcmtk not installed")
    pki = tmp_path / "pki"
    init_pki(pki, ("localhost", "127.0.0.1"), {"pacs1": "integration"})
    rogue = make_ca(tmp_path / "rogue", "Rogue CA")
    issue(tmp_path / "rogue", "pacs-x", "pacs-x", rogue.cert, rogue.key)
    state.write_text(state.read_text().replace("[dicom]\n", f'[dicom]\ntls_cert_file = "{pki / "server.pem"}"\n'
                                               f'tls_key_file = "{pki / "server.key"}"\n'
                                               f'tls_client_ca_file = "{pki / "ca.pem"}"\n', 1))
    run = start_daemon(state, tmp_path / "d.log")
    try:
        from appliance.config import load_config

        port = str(load_config(state).dicom.port)
        sr = tmp_path / "sr.dcm"
        sr.write_bytes(make_sr())

        def store(*tls: str) -> str:
            r = subprocess.run(["storescu", "-v", "-aec", "APPLIANCE", "-aet", "PACS1", *tls, "127.0.0.1", port, str(sr)],
                               capture_output=True, text=True, timeout=60)
            return r.stdout + r.stderr

        good = store("+tls", str(pki / "client-pacs1.key"), str(pki / "client-pacs1.pem"), "+cf", str(pki / "ca.pem"))
        assert "Received Store Response (Success)" in good, good
        assert "Success" not in store()  # plain TCP on a TLS port
        bad = store("+tls", str(tmp_path / "rogue" / "pacs-x.key"), str(tmp_path / "rogue" / "pacs-x.pem"),
                    "+cf", str(pki / "ca.pem"))
        assert "Received Store Response (Success)" not in bad
    finally:
        stop_daemon(run)


def test_after_the_bombs_a_killed_daemon_restarts_and_finishes_them(state, tmp_path):
    """Once, the bombs froze the daemon across restarts: the same document was picked up again
    and froze it again. Killed (-9) right after their ACKs, the daemon restarts, serves, and
    de-identifies what was acknowledged."""
    import random
    import string

    from appliance.v1 import appliance_pb2 as pb
    from conftest import start_daemon, stop_daemon
    from test_mllp import wait_deidentified

    state.write_text(state.read_text().replace("[model]\n", "[model]\nsummarize_on_arrival = false\n", 1))
    run = start_daemon(state, tmp_path / "d1.log")
    from appliance.config import load_config

    port = load_config(state).mllp.port
    random.seed(9)
    blob = "".join(random.choice(string.ascii_letters + string.digits) for _ in range(150_000))
    c = MllpClient(port, timeout=60)
    try:
        for cid, body in (("RB-1", "Report\\.sp2000000\\" * 200 + " small effusion"),
                          ("RB-2", f"Chest clear. {blob}"), ("RB-3", "Small left effusion.")):
            assert msa(c.request(oru(cid, body)))[1] == "AA"
    finally:
        c.close()
    run.proc.kill()  # no clean stop: whatever was in flight is in flight
    run.proc.wait(30)
    t = time.monotonic()
    run = start_daemon(state, tmp_path / "d2.log", timeout=120)
    try:
        assert time.monotonic() - t < 120
        docs = run.stub().ListDocuments(pb.ListDocumentsRequest(limit=10), timeout=10).documents
        assert len(docs) == 3
        for d in docs:
            assert wait_deidentified(run, d.id, timeout=60).status != pb.PARSED
    finally:
        stop_daemon(run)


def test_one_peer_cannot_starve_another_and_a_trickling_frame_is_closed_on_time(state, tmp_path):
    """40 idle and 40 byte-a-second connections from one address take at most its share of the
    slots; a second address's new connections all get AA; a frame that trickles in is closed
    when its whole time is up, not kept alive by each byte."""
    import socket
    import threading

    from conftest import start_daemon, stop_daemon

    _with(state, "mllp", max_connections=16, max_connections_per_peer=4, frame_timeout_s=3)
    run = start_daemon(state, tmp_path / "d.log")
    stop = threading.Event()
    try:
        from appliance.config import load_config

        port = load_config(state).mllp.port
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(40)]
        slow = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(40)]
        closed_at: dict[int, float] = {}
        t0 = time.monotonic()

        def slow_sender(i: int, s: socket.socket) -> None:
            closed = trickle(s, stop, 0.5)
            if closed is not None:
                closed_at[i] = closed - t0
        threads = [threading.Thread(target=slow_sender, args=(i, s), daemon=True) for i, s in enumerate(slow)]
        for t in threads:
            t.start()
        # (How long the second address waits is a benchmark's figure, not a test's.)
        for n in range(20):
            c = MllpClient(port, timeout=10, source="127.0.0.2")
            try:
                ack = c.request(oru(f"FAIR-{n}", "Small left effusion."))
            finally:
                c.close()
            assert ack is not None and msa(ack)[1] == "AA", ack
        time.sleep(6)
        # Every trickling connection the appliance admitted was closed by its frame's deadline.
        admitted = [i for i in closed_at if closed_at[i] > 0.5]
        assert all(closed_at[i] < 3 + 3 for i in admitted), closed_at
        for s in idle + slow:
            s.close()
    finally:
        stop.set()
        stop_daemon(run)


def test_one_peer_cannot_take_every_dicom_association(state, tmp_path):
    """Silent connections from one address hold at most its share of the associations; a PACS at
    another address still associates and is answered (pynetdicom as that PACS)."""
    import socket

    from pynetdicom import AE

    from conftest import start_daemon, stop_daemon

    _with(state, "dicom", max_associations=8, max_associations_per_peer=4)
    run = start_daemon(state, tmp_path / "d.log")
    try:
        from appliance.config import load_config

        port = load_config(state).dicom.port
        silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(30)]
        ae = AE(ae_title="PACS2")
        ae.add_requested_context("1.2.840.10008.1.1")
        for _ in range(5):
            assoc = ae.associate("127.0.0.1", port, ae_title="APPLIANCE", bind_address=("127.0.0.2", 0))
            assert assoc.is_established
            status = assoc.send_c_echo()
            assoc.release()
            assert status.Status == 0x0000
        for s in silent:
            s.close()
    finally:
        stop_daemon(run)


def test_unfinished_frames_are_bounded_in_total_and_batches_per_frame(state, tmp_path):
    """Half-sent frames from many connections hold at most mllp.max_buffered_bytes together: the
    connection that would pass it is answered AE (resend later) and closed, the others and new
    senders go on; a frame with more than mllp.max_messages_per_frame messages is refused whole;
    a batch within the cap is acknowledged message by message."""
    import socket

    from conftest import start_daemon, stop_daemon

    _with(state, "mllp", max_frame_bytes=1_048_576, max_buffered_bytes=3_145_728, max_messages_per_frame=50)
    run = start_daemon(state, tmp_path / "d.log")
    try:
        from appliance.config import load_config

        port = load_config(state).mllp.port
        held = []
        answers = []
        for _ in range(5):  # 5 x 900 KB unfinished: the fourth passes 3 MB
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"\x0b" + oru("HALF", "x " * 450_000)[:900_000])
            held.append(s)
        for s in held:
            s.settimeout(3)
            try:
                answers.append(s.recv(4096))
            except TimeoutError:
                answers.append(b"")
        refused = [a for a in answers if b"MSA|AE" in a]
        # Which connection's read passes the budget depends on how the reads interleave; at least
        # one is refused, with the key to raise, and the listener goes on serving.
        assert refused and all(b"max_buffered_bytes" in a for a in refused), answers
        c = MllpClient(port, timeout=10, source="127.0.0.2")
        assert msa(c.request(oru("AFTER-BUDGET", "Small left effusion.")))[1] == "AA"
        batch = b"".join(oru(f"BATCH-{i}", "Lungs clear.") for i in range(51))
        ack = c.request(batch)
        assert ack is not None and msa(ack)[1] == "AR" and b"max_messages_per_frame" in ack
        c.close()
        c = MllpClient(port, timeout=10, source="127.0.0.2")
        c.send(b"".join(oru(f"OKBATCH-{i}", "Lungs clear.") for i in range(10)))
        acks = [c.read_frame() for _ in range(10)]
        assert all(a is not None and msa(a)[1] == "AA" for a in acks), acks
        c.close()
        for s in held:
            s.close()
    finally:
        stop_daemon(run)
