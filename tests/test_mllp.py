"""HL7 v2 over MLLP against the real daemon: a third-party sender (python-hl7's mllp_send),
ACK after commit, duplicates, refusals, framing errors, and kill -9 in mid-stream."""
from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.store import open_store
from conftest import DATA, SAMPLE, start_daemon, stop_daemon
from mllp_client import MllpClient, msa

CORPUS = DATA / "hl7corpus"
ADT_STREAM = CORPUS / "nextgen-connect" / "simplesender_TestADT.txt"
MLLP_SEND = shutil.which("mllp_send") or str(Path(sys.executable).parent / "mllp_send")


def mllp_port(run) -> int:
    return load_config(run.config).mllp.port


def mllp_send(port: int, path: Path) -> list[str]:
    r = subprocess.run([MLLP_SEND, "-p", str(port), "--loose", "-f", str(path), "127.0.0.1"],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [seg for seg in r.stdout.decode().replace("\n", "\r").split("\r") if seg.startswith("MSA")]


def wait_deidentified(run, doc_id: str, timeout: float = 30.0):
    from appliance.v1 import appliance_pb2 as pb

    deadline = time.monotonic() + timeout
    while True:
        doc = run.stub().GetDocument(pb.GetDocumentRequest(document_id=doc_id), timeout=10)
        if doc.status != pb.PARSED:
            return doc
        assert doc.deidentified_text == ""
        assert time.monotonic() < deadline, "document still waiting for de-identification"
        time.sleep(0.1)


def stored_keys(config: Path) -> list[str]:
    cfg = load_config(config)
    store = open_store(cfg.store.path, cfg.store.key_file)
    try:
        return [r[0] for r in store._query("SELECT message_key FROM raw_messages")]
    finally:
        store.close()


def _reused_ids(path: Path) -> list[bool]:
    """Per message of a stream: whether its MSH-10 came earlier with different content."""
    text = path.read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    first: dict[bytes, bytes] = {}
    out = []
    for m in (b"MSH" + x for x in text.split(b"MSH")[1:]):
        segs = m.strip(b"\r").split(b"\r")
        cid, body = segs[0].split(b"|")[9], b"\r".join(segs[1:])
        out.append(first.setdefault(cid, body) != body)
    return out


def test_mllp_send_adt_stream_all_acknowledged_and_stored_once(daemon):
    """The NextGen Connect test feed repeats 15 control ids; one of them once comes back with a
    corrupted NK1 under the same MSH-10: that one is refused (AR, kept), the true repeats are AA."""
    port = mllp_port(daemon)
    reused = _reused_ids(ADT_STREAM)
    assert len(reused) == 124 and 0 < sum(reused) < 10
    first = mllp_send(port, ADT_STREAM)
    assert len(first) == 124
    for msa, bad in zip(first, reused):
        assert msa.startswith("MSA|AR|" if bad else "MSA|AA|"), msa
        if bad:
            assert "already used by a different message" in msa
    again = mllp_send(port, ADT_STREAM)
    assert again == first  # duplicates are acknowledged again, identically
    stop_daemon(daemon)
    keys = stored_keys(daemon.config)
    assert len(keys) == len(set(keys)) == 15  # the stream repeats 15 distinct MSH-10 values


@pytest.mark.parametrize("name", [
    "hl7corpus/nextgen-connect/donkey_large.hl7",
    "hl7corpus/fhir-converter-hl7v2/Hl7v2/ORU-R01-01.hl7",
    "hl7corpus/node-hl7-complete/valid_nist_ORU_R01_2.5.1_SampleTestCase1.hl7",
    "hl7corpus/fhir-converter-hl7v2/Hl7v2/MDM-T02-03.hl7",
    "hl7corpus/cdc-trusted-intermediary/CA/002_CA_ORU_R01.hl7",
])
def test_mllp_send_reports_are_accepted_and_readable(daemon, name):
    from appliance.v1 import appliance_pb2 as pb

    acks = mllp_send(mllp_port(daemon), DATA / name)
    assert len(acks) == 1 and acks[0].split("|")[1] in ("AA", "CA")
    docs = daemon.stub().ListDocuments(pb.ListDocumentsRequest(), timeout=10).documents
    assert len(docs) == 1
    # Acknowledged once parsed and committed; de-identified moments later, never shown before.
    doc = wait_deidentified(daemon, docs[0].id)
    assert doc.status in (pb.RECEIVED, pb.SUMMARIZING, pb.SUMMARIZED) and len(doc.deidentified_text) > 20
    from appliance.ingest.hl7.er7 import decode_message
    from appliance.ingest.hl7.parse import parse

    known = parse(decode_message((DATA / name).read_bytes())).known
    log = daemon.output()

    def word(x: str):  # whole words: a surrogate such as "Johnson" is not the name "John"
        return re.compile(r"(?<![A-Za-z0-9])" + re.escape(x) + r"(?![A-Za-z0-9])", re.IGNORECASE)

    for n in known.patient_names:
        for part in (n.family, n.given):
            if len(part) >= 4:
                assert not word(part).search(log) and not word(part).search(doc.deidentified_text), \
                    "patient name leaked"
    for mrn in known.record_numbers:
        if len(mrn) >= 5:
            assert not word(mrn).search(log)


def test_unsupported_type_gets_ar_with_err_naming_msh9(daemon):
    c = MllpClient(mllp_port(daemon))
    ack = c.request((CORPUS / "fhir-converter-hl7v2" / "Hl7v2" / "SIU-S12-01.hl7").read_bytes())
    c.close()
    segs = ack.decode().split("\r")
    assert msa(ack)[1] == "AR" and msa(ack)[2] == "MSG00012"
    err = next(s for s in segs if s.startswith("ERR"))
    assert "MSH^1^9" in err and "200" in err and "not supported" in err
    msh = segs[0].split("|")
    assert msh[2] == "EHRApp^1.Aux^ISO" and msh[4] == "SCHApp"  # sending and receiving swapped
    assert msh[11] == "2.8"  # the sender's version


@pytest.mark.parametrize("name,expected", [
    ("msh_present_but_missing_msh-9.hl7", "MSH-9"),
    ("msh_present_but_missing_msh-10.hl7", "MSH-10"),
    ("msh_present_but_missing_msh-2.hl7", "MSH-2"),
    ("msh_present_but_missing_all_fields.hl7", "MSH"),
])
def test_malformed_msh_gets_ar_with_reason_and_dead_letter(daemon, name, expected):
    from appliance.v1 import appliance_pb2 as pb

    c = MllpClient(mllp_port(daemon))
    ack = c.request((CORPUS / "cdc-trusted-intermediary" / "Test" / "Message" / name).read_bytes())
    c.close()
    assert msa(ack)[1] == "AR" and expected in ack.decode()
    dead = daemon.stub().ListDeadLetters(pb.ListDeadLettersRequest(), timeout=10).dead_letters
    assert len(dead) == 1 and expected in dead[0].reason


def _with_ack_types(raw: bytes, accept: str, app: str) -> bytes:
    lines = raw.decode().replace("\n", "\r").split("\r")
    f = lines[0].split("|")
    f += [""] * (17 - len(f))
    f[14], f[15] = accept, app
    lines[0] = "|".join(f)
    return "\r".join(lines).encode()


def test_enhanced_mode_sends_commit_then_application_ack(daemon):
    c = MllpClient(mllp_port(daemon))
    c.send(_with_ack_types(SAMPLE.read_bytes(), "AL", "AL"))
    first, second = c.read_frame(), c.read_frame()
    c.close()
    assert msa(first)[1] == "CA" and msa(second)[1] == "AA"
    assert msa(first)[2] == msa(second)[2] == "DEMO-0001"


def test_garbage_closes_only_that_connection(daemon):
    port = mllp_port(daemon)
    good = MllpClient(port)
    bad = MllpClient(port)
    bad.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    ack = bad.read_frame()
    assert msa(ack)[1] == "AR" and "outside an MLLP frame" in ack.decode()
    assert bad.read_frame() is None  # closed
    assert msa(good.request(SAMPLE.read_bytes()))[1] in ("AA", "CA")
    good.close()


def test_oversized_frame_is_refused_and_closed(state, tmp_path):
    text = state.read_text().replace("max_frame_bytes = 16777216", "max_frame_bytes = 4096")
    state.write_text(text)
    run = start_daemon(state, tmp_path / "d.log")
    try:
        c = MllpClient(mllp_port(run))
        c.send_raw(b"\x0bMSH|^~\\&|" + b"X" * 10000)
        ack = c.read_frame()
        assert msa(ack)[1] == "AR" and "mllp.max_frame_bytes" in ack.decode()
        assert c.read_frame() is None
        c2 = MllpClient(mllp_port(run))
        assert msa(c2.request(SAMPLE.read_bytes()))[1] in ("AA", "CA")
        c2.close()
    finally:
        stop_daemon(run)


def _adt(i: int) -> bytes:
    return (f"MSH|^~\\&|CRASHTEST|FAC|APPLIANCE|FAC|20260101120000||ADT^A08^ADT_A01|CT{i:06d}|P|2.5\r"
            "EVN|A08|20260101120000\r"
            f"PID|1||{1000000 + i % 997:07d}^^^HOSP^MR||Testperson^Pat||19700101|F\r"
            "PV1|1|I\r").encode()


def _stream(port: int, messages: list[bytes], start: int, acked: set[int], kill=None) -> int:
    """Send in order from `start`; return the index of the first message without an AA.
    `kill` = (index, pid, delay): SIGKILL the daemon `delay` seconds after sending that message,
    i.e. while it is parsing, committing or acknowledging it."""
    c = MllpClient(port, timeout=10)
    i = start
    try:
        while i < len(messages):
            c.send(messages[i])
            if kill is not None and i == kill[0]:
                time.sleep(kill[2])
                os.kill(kill[1], signal.SIGKILL)
            ack = c.read_frame()
            if ack is None:
                return i
            if msa(ack)[1] == "AA":
                acked.add(i)
            i += 1
    except OSError:
        return i
    finally:
        c.close()
    return i


@pytest.mark.timeout(900)
def test_kill_9_mid_stream_loses_no_acked_message_and_stores_none_twice(state, tmp_path):
    messages = [_adt(i) for i in range(5000)]
    rng = random.Random(4)
    acked: set[int] = set()
    position = 0
    for attempt in range(3):
        run = start_daemon(state, tmp_path / f"d{attempt}.log")
        # a random message of the next stretch, killed 0-2 ms after it was sent
        kill_at = position + rng.randrange(200, 1500)
        position = _stream(mllp_port(run), messages, position, acked, (kill_at, run.proc.pid, rng.uniform(0, 0.002)))
        run.proc.wait(30)
        assert run.proc.returncode == -signal.SIGKILL
        assert position <= kill_at + 1
    run = start_daemon(state, tmp_path / "final.log")
    position = _stream(mllp_port(run), messages, position, acked)
    assert position == len(messages)
    assert stop_daemon(run) == 0
    keys = stored_keys(state)
    assert len(keys) == len(set(keys)), "a message was stored twice"
    stored = {k.split("|")[2] for k in keys}
    assert {f"CT{i:06d}" for i in acked} <= stored, "a message that received AA was lost"
    assert len(stored) == 5000


def test_dead_letter_listed_and_resubmitted_after_a_fix(daemon, tmp_path):
    ctl = [sys.executable, "-m", "appliance.cli.main", "--config", str(daemon.config)]
    broken = SAMPLE.read_bytes().replace(b"|2.5.1|", b"||")  # MSH-12 lost on the way
    c = MllpClient(mllp_port(daemon))
    ack = c.request(broken)
    c.close()
    assert msa(ack)[1] == "AR" and "MSH-12" in ack.decode()
    listing = subprocess.run(ctl + ["deadletters"], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and "MSH-12" in listing.stdout and "mllp" in listing.stdout
    dl_id = listing.stdout.split("\t")[0]
    fixed = tmp_path / "fixed.hl7"
    fixed.write_bytes(SAMPLE.read_bytes())
    r = subprocess.run(ctl + ["resubmit", dl_id, "--file", str(fixed)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("ACCEPTED"), r.stdout + r.stderr
    after = subprocess.run(ctl + ["deadletters"], capture_output=True, text=True, timeout=60)
    assert dl_id not in after.stdout  # resolved


@pytest.mark.parametrize("msh", [
    # A patient's name shifted into the message type, the version, the control id, the sender.
    "MSH|^~\\&|PELLEGRINO|OTTAVIA|APPLIANCE|GH|20261120143000||PELLEGRINO^OTTAVIA|C-1|P|2.5.1",
    "MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261120143000||ORU^R01|C-2|P|PELLEGRINO^OTTAVIA",
    "MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261120143000|PELLEGRINO|ORU^R01^ORU_R01|PELLEGRINO-OTTAVIA-19600101|P|2.5.1",
    "MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261120143000||ORU^R01^ORU_R01||P|2.5.1",
])
def test_no_message_content_reaches_the_log_whatever_the_header_holds(daemon, msh):
    """A refusal's reason may quote the message; the log gets its codes and lengths only."""
    msg = (f"{msh}\rPID|1||7701^^^GH^MR||Pellegrino^Ottavia||19600101|F\rOBR|1|O1|A1|71020^CHEST XRAY^CPT\r"
           "OBX|1|TX|18782-3^Study^LN||FINDINGS: Small left effusion.||||||F\r").encode()
    client = MllpClient(mllp_port(daemon))
    try:
        ack = client.request(msg)
    finally:
        client.close()
    assert ack is not None and (b"MSA|AR" in ack or b"MSA|AE" in ack or b"MSA|AA" in ack)
    log = daemon.output()
    for phi in ("pellegrino", "ottavia", "19600101"):
        assert phi not in log.lower(), (phi, log[-2000:])
