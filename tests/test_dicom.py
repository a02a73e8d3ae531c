"""DICOM intake against the real daemon, driven by dcmtk's storescu/echoscu (a PACS's own
tools) and pynetdicom's storescu/echoscu (a second implementation): association negotiation, C-ECHO, C-STORE of structured reports committed before
Success, duplicates, refusals kept as dead letters, and the SR reader on third-party files."""
from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.api.dicom import decode_command, encode_command
from appliance.config import load_config
from appliance.errors import InvalidMessage
from appliance.ingest.dicom.read import parse_dicom
from conftest import DATA
from dicom_sr import make_sr
from test_mllp import stored_keys, wait_deidentified

STORESCU, ECHOSCU = shutil.which("storescu"), shutil.which("echoscu")
needs_dcmtk = pytest.mark.skipif(not STORESCU, reason="dcmtk not installed (make deps installs it)")
DICOM_DATA = DATA / "dicom"


def dicom_port(run) -> int:
    return load_config(run.config).dicom.port


def storescu(port: int, *files: Path, aec: str = "APPLIANCE", flag: str = "-v") -> subprocess.CompletedProcess:
    return subprocess.run([STORESCU, flag, "-aec", aec, "-aet", "PACS1", "127.0.0.1", str(port), *map(str, files)],
                          capture_output=True, text=True, timeout=60)


def documents(run):
    from appliance.v1 import appliance_pb2 as pb

    return run.stub().ListDocuments(pb.ListDocumentsRequest(limit=100), timeout=10).documents


def dead_letters(run):
    from appliance.v1 import appliance_pb2 as pb

    return run.stub().ListDeadLetters(pb.ListDeadLettersRequest(limit=100), timeout=10).dead_letters


@needs_dcmtk
def test_echoscu_verifies_the_association(daemon):
    r = subprocess.run([ECHOSCU, "-v", "-aec", "APPLIANCE", "127.0.0.1", str(dicom_port(daemon))],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Received Echo Response (Success)" in r.stdout + r.stderr


@needs_dcmtk
def test_storescu_sr_is_committed_deidentified_and_deduplicated(daemon, tmp_path):
    path = tmp_path / "report.dcm"
    path.write_bytes(make_sr())
    r = storescu(dicom_port(daemon), path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "Received Store Response (Success)" in out
    docs = [d for d in documents(daemon) if d.kind == "dicom:Basic Text SR"]
    assert len(docs) == 1
    doc = wait_deidentified(daemon, docs[0].id)
    for phi in ("Eleanor", "Whitaker", "MRN4471902", "OKAFOR", "Chidi", "03/12/2024"):
        assert phi.lower() not in doc.deidentified_text.lower(), phi
    assert "Heart size normal" in doc.deidentified_text
    # The PACS resends the same instance: Success again, stored once.
    r = storescu(dicom_port(daemon), path)
    assert "Received Store Response (Success)" in r.stdout + r.stderr
    assert len([d for d in documents(daemon) if d.kind == "dicom:Basic Text SR"]) == 1
    assert sum(k.startswith("dicom|") for k in stored_keys(daemon.config)) == 1
    log = daemon.output()
    for phi in ("Eleanor", "Whitaker", "MRN4471902", "OKAFOR"):
        assert phi.lower() not in log.lower(), phi


@needs_dcmtk
def test_many_reports_in_one_association(daemon, tmp_path):
    files = []
    for i in range(20):
        p = tmp_path / f"r{i}.dcm"
        p.write_bytes(make_sr(patient_id=f"P{i:04d}", impression=f"Finding number {i}."))
        files.append(p)
    r = storescu(dicom_port(daemon), *files)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (r.stdout + r.stderr).count("Received Store Response (Success)") == 20
    assert len([d for d in documents(daemon) if d.kind.startswith("dicom:")]) == 20


@needs_dcmtk
def test_images_are_refused_at_negotiation_and_wrong_ae_title_is_rejected(daemon):
    ct = DICOM_DATA / "CT_small.dcm"
    r = storescu(dicom_port(daemon), ct)
    assert r.returncode != 0
    assert "No presentation context" in r.stdout + r.stderr or "no presentation context" in (r.stdout + r.stderr).lower()
    r = storescu(dicom_port(daemon), ct, aec="SOMEONE_ELSE")
    assert r.returncode != 0
    assert "Called AE Title Not Recognized" in r.stdout + r.stderr
    assert documents(daemon) == [] or all(not d.kind.startswith("dicom:") for d in documents(daemon))


@needs_dcmtk
def test_an_sr_without_text_is_refused_with_a_reason_and_kept(daemon, tmp_path):
    import pydicom

    from io import BytesIO

    ds = pydicom.dcmread(BytesIO(make_sr()))
    del ds.ContentSequence
    del ds.ConceptNameCodeSequence
    path = tmp_path / "empty.dcm"
    ds.save_as(path)
    r = storescu(dicom_port(daemon), path, flag="-d")
    out = r.stdout + r.stderr
    assert "0xc000: Error: Cannot understand" in out, out
    assert "SR has no text, code or measurement to summarise" in out  # the Error Comment (0000,0902)
    letters = dead_letters(daemon)
    assert len(letters) == 1 and letters[0].transport == "dicom"
    assert "no text" in letters[0].reason


def test_submit_dicom_over_grpc(daemon):
    import grpc

    from appliance.v1 import appliance_pb2 as pb

    raw = make_sr(sop_instance_uid="1.2.826.0.1.3680043.10.1234.99.1")
    r = daemon.stub().SubmitDICOM(pb.SubmitDICOMRequest(file=raw, source="PACS-test"), timeout=30)
    assert r.outcome == pb.ACCEPTED and r.message_control_id == "1.2.826.0.1.3680043.10.1234.99.1"
    assert r.message_type == "dicom:Basic Text SR"
    again = daemon.stub().SubmitDICOM(pb.SubmitDICOMRequest(file=raw), timeout=30)
    assert again.outcome == pb.DUPLICATE and again.document_id == r.document_id
    with pytest.raises(grpc.RpcError) as e:
        daemon.stub().SubmitDICOM(pb.SubmitDICOMRequest(file=(DICOM_DATA / "CT_small.dcm").read_bytes()),
                                  timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "carries no report text" in e.value.details() and "dead letter" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        daemon.stub().SubmitDICOM(pb.SubmitDICOMRequest(), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "file is required" in e.value.details()


def test_garbage_on_the_dicom_port_aborts_only_that_connection(daemon):
    port = dicom_port(daemon)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"\x09\x00" + struct.pack(">I", 4) + b"junk")
        reply = s.recv(16)
        assert reply[:1] == b"\x07"  # A-ABORT
    test_echoscu_verifies_the_association(daemon)


# -- the SR reader on third-party files ---------------------------------------------------------
@pytest.mark.parametrize("name", ["test-SR.dcm", "reportsi.dcm", "sr_document.dcm",
                                  "sr_document_with_multiple_groups.dcm"])
def test_third_party_srs_give_text_and_identifiers(name):
    p = parse_dicom((DICOM_DATA / name).read_bytes())
    assert p.document.text.strip()
    assert p.document.known.patient_names
    assert p.sop_instance_uid


def test_sr_observer_names_become_known_identifiers():
    p = parse_dicom((DICOM_DATA / "sr_document_with_multiple_groups.dcm").read_bytes())
    names = {(n.family, n.given) for n in p.document.known.other_names}
    assert ("Doe", "John") in names or ("John", "Doe") in names


@pytest.mark.parametrize("name,reason", [
    ("CT_small.dcm", "carries no report text"),
    ("MR_truncated.dcm", "DICOM dataset incomplete: element (7FE0,0010) declares 8192 bytes and 8130 arrived"),
    ("no_meta.dcm", "not a DICOM Part 10 file"),
])
def test_unusable_files_are_refused_with_a_specific_reason(name, reason):
    with pytest.raises(InvalidMessage) as e:
        parse_dicom((DICOM_DATA / name).read_bytes())
    assert reason in e.value.reason


def test_dimse_command_round_trip():
    data = encode_command([(0x0100, struct.pack("<H", 0x0030)), (0x0110, struct.pack("<H", 7))])
    cmd = decode_command(data)
    assert struct.unpack("<I", cmd[0x0000])[0] == len(data) - 12
    assert cmd[0x0100] == b"\x30\x00" and cmd[0x0110] == b"\x07\x00"


@pytest.mark.parametrize("name,spoken", [
    ("chrRuss.dcm", "Люкceмбypг"), ("chrGreek.dcm", "Διονυσιος"), ("chrH31.dcm", "山田"),
    ("chrArab.dcm", "قباني"), ("chrKoreanMulti.dcm", "김희중"),
])
def test_patient_names_in_any_character_set_are_scrubbed(name, spoken):
    """The patient's name from a header in ISO 8859-5/-7/-6, ISO 2022 (JIS, KS X 1001), in every
    component group, is found in the report text of an SR for that patient."""
    import pydicom

    from appliance.deid import deidentify

    src = pydicom.dcmread(DICOM_DATA / name)
    src.decode()
    raw = make_sr(patient_name=str(src.PatientName),
                  findings=f"Patient {spoken} seen today. Heart size normal.")
    parsed = parse_dicom(raw)
    d = deidentify(parsed.document.text, parsed.document.known, b"s" * 32)
    assert spoken not in d.text
    assert "Heart size normal" in d.text


@needs_dcmtk
def test_kill_9_while_a_pacs_sends_loses_no_report_that_got_success(state, tmp_path):
    import os
    import random
    import signal
    import time

    from conftest import start_daemon, stop_daemon

    uid = "1.2.826.0.1.3680043.10.1234.7.{}".format
    files = []
    for i in range(300):
        p = tmp_path / f"k{i:04d}.dcm"
        p.write_bytes(make_sr(patient_id=f"K{i:04d}", sop_instance_uid=uid(i)))
        files.append(p)
    run = start_daemon(state, tmp_path / "d0.log")
    proc = subprocess.Popen([STORESCU, "-v", "-aec", "APPLIANCE", "127.0.0.1", str(dicom_port(run)),
                             *map(str, files)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TCP_NODELAY": "1"})
    time.sleep(random.Random(7).uniform(0.3, 0.6))
    run.proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    run.proc.wait(30)
    succeeded, current = set(), None
    for line in out.splitlines():
        if "Sending file:" in line:
            current = Path(line.split("Sending file:")[1].strip()).name
        elif "Received Store Response (Success)" in line and current:
            succeeded.add(int(current[1:5]))
    assert 0 < len(succeeded) < 300, "the kill should land mid-stream"
    before = {k for k in stored_keys(state) if k.startswith("dicom|")}
    assert {f"dicom|{uid(i)}" for i in succeeded} <= before, "a report answered Success was lost"
    run = start_daemon(state, tmp_path / "d1.log")
    r = storescu(dicom_port(run), *files)
    assert (r.stdout + r.stderr).count("Received Store Response (Success)") == 300
    assert stop_daemon(run) == 0
    keys = [k for k in stored_keys(state) if k.startswith("dicom|")]
    assert len(keys) == len(set(keys)) == 300, "a report was stored twice or lost"


@needs_dcmtk
def test_only_listed_calling_ae_titles_may_send(state, tmp_path):
    from conftest import start_daemon, stop_daemon

    state.write_text(state.read_text().replace("calling_ae_titles = []", 'calling_ae_titles = ["PACS1"]'))
    run = start_daemon(state, tmp_path / "d.log")
    try:
        path = tmp_path / "r.dcm"
        path.write_bytes(make_sr())
        r = subprocess.run([STORESCU, "-v", "-aec", "APPLIANCE", "-aet", "INTRUDER", "127.0.0.1",
                            str(dicom_port(run)), str(path)], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "Calling AE Title Not Recognized" in r.stdout + r.stderr
        r = storescu(dicom_port(run), path)  # -aet PACS1
        assert "Received Store Response (Success)" in r.stdout + r.stderr
    finally:
        stop_daemon(run)


@pytest.mark.parametrize("abuse", ["pdv_on_unknown_context", "dataset_before_command", "huge_pdu",
                                   "truncated_pdv", "second_associate", "huge_release", "endless_command"])
def test_protocol_abuse_aborts_that_association_only(daemon, abuse):
    from dicom_client import abuse_cases, associate_rq, read_pdu

    port = dicom_port(daemon)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(associate_rq("APPLIANCE"))
        kind, _ = read_pdu(s)
        assert kind == 0x02  # A-ASSOCIATE-AC
        bad = abuse_cases()[abuse]
        s.sendall(bad)
        kind, _ = read_pdu(s)
        assert kind == 0x07  # A-ABORT
    test_echoscu_verifies_the_association(daemon)  # the listener serves the next peer


# -- a second implementation: pynetdicom's own storescu / echoscu apps -------------------------
def pynetdicom_app(app: str, port: int, *args: str, aec: str = "APPLIANCE") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pynetdicom", app, "127.0.0.1", str(port), *args,
                           "-aec", aec, "-aet", "PACS2", "-v"], capture_output=True, text=True, timeout=60)


def test_pynetdicoms_storescu_is_served_like_dcmtks(daemon, tmp_path):
    """The appliance speaks the upper layer itself (api/dicom.py says why): a second, independent
    implementation negotiates, echoes, stores and hears refusals from it as dcmtk does."""
    import pydicom

    from io import BytesIO

    port = dicom_port(daemon)
    r = pynetdicom_app("echoscu", port)
    assert r.returncode == 0 and "Received Echo Response (Status: 0x0000 - Success)" in r.stdout + r.stderr, \
        r.stdout + r.stderr
    path = tmp_path / "report.dcm"
    path.write_bytes(make_sr(patient_name="ASHDOWN^CECILY", patient_id="MRN5551212"))
    r = pynetdicom_app("storescu", port, str(path))
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "Received Store Response (Status: 0x0000 - Success)" in out, out
    [doc] = [d for d in documents(daemon) if d.kind == "dicom:Basic Text SR"]
    text = wait_deidentified(daemon, doc.id).deidentified_text
    assert "Heart size normal" in text and "ashdown" not in text.lower() and "MRN5551212" not in text
    # A report without text: 0xC000 with the reason as its Error Comment, kept as a dead letter.
    ds = pydicom.dcmread(BytesIO(make_sr()))
    del ds.ContentSequence
    del ds.ConceptNameCodeSequence
    empty = tmp_path / "empty.dcm"
    ds.save_as(empty)
    r = pynetdicom_app("storescu", port, str(empty))
    out = r.stdout + r.stderr
    assert "Received Store Response (Status: 0xC000 - Failure)" in out, out
    [letter] = dead_letters(daemon)
    assert letter.transport == "dicom" and "no text" in letter.reason
    # An image: refused at negotiation (no context for CT), nothing stored.
    r = pynetdicom_app("storescu", port, "-cx", str(DICOM_DATA / "CT_small.dcm"))
    assert r.returncode != 0 and "No accepted presentation contexts" in r.stdout + r.stderr, r.stdout + r.stderr
    assert [d.id for d in documents(daemon) if d.kind.startswith("dicom:")] == [doc.id]
    r = pynetdicom_app("echoscu", port, aec="SOMEONE_ELSE")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "Association Rejected" in out and "Called AE title not recognised" in out, out
    assert "ashdown" not in daemon.output().lower()


# -- integrity: never a silently wrong or missing document ------------------------------------
def _implicit_dataset(raw_part10: bytes) -> tuple[bytes, str, str]:
    """(the dataset in Implicit VR Little Endian, its SOP class, its instance) of a Part 10 file."""
    from io import BytesIO

    import pydicom
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = pydicom.dcmread(BytesIO(raw_part10))
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_dataset(fp, ds)
    return fp.getvalue(), str(ds.SOPClassUID), str(ds.SOPInstanceUID)


def _c_store_raw(port: int, dataset: bytes, sop_class: str, instance: str) -> tuple[int, str]:
    """One C-STORE over a hand-made association whose dataset is sent exactly as given, its last
    fragment flagged last: what a sender whose connection lost the end of a dataset delivers.
    Returns (status, error comment)."""
    from appliance.api.dicom import _uid, _us, p_data
    from dicom_client import associate_rq, read_pdu

    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(associate_rq("APPLIANCE", abstract=sop_class))
        kind, _ = read_pdu(s)
        assert kind == 0x02
        cmd = encode_command([(0x0002, _uid(sop_class)), (0x0100, _us(0x0001)), (0x0110, _us(7)),
                              (0x0700, _us(0)), (0x0800, _us(0x0000)), (0x1000, _uid(instance))])
        s.sendall(p_data(1, cmd, True, 16384) + p_data(1, dataset, False, 16384))
        kind, payload = read_pdu(s)
        assert kind == 0x04, kind
        rsp = decode_command(payload[6:])
        status = struct.unpack("<H", rsp[0x0900])[0]
        comment = rsp.get(0x0902, b"").decode("ascii", "replace").strip("\x00 ")
        return status, comment


def test_a_dataset_cut_short_is_refused_and_kept_never_stored(daemon):
    dataset, sop_class, instance = _implicit_dataset(make_sr(impression="No pneumothorax on the left side."))
    cut = dataset[:dataset.index(b"No pneumothorax on the le") + len(b"No pneumothorax on the le")]
    status, comment = _c_store_raw(dicom_port(daemon), cut, sop_class, instance)
    assert status == 0xC000 and "incomplete" in comment, (hex(status), comment)
    assert not [d for d in documents(daemon) if d.kind.startswith("dicom:")]
    [letter] = dead_letters(daemon)
    assert letter.transport == "dicom" and "incomplete" in letter.reason
    # The whole instance, sent again, is stored.
    status, comment = _c_store_raw(dicom_port(daemon), dataset, sop_class, instance)
    assert status == 0x0000, comment
    assert len([d for d in documents(daemon) if d.kind.startswith("dicom:")]) == 1


def test_a_command_naming_another_instance_than_its_dataset_is_refused(daemon):
    dataset, sop_class, _instance = _implicit_dataset(make_sr())
    status, comment = _c_store_raw(dicom_port(daemon), dataset, sop_class, "1.2.3.4.5.6.7")
    assert status == 0xC000 and "SOP Instance UID differs" in comment, comment
    assert not [d for d in documents(daemon) if d.kind.startswith("dicom:")]


@needs_dcmtk
def test_a_different_report_under_a_used_instance_uid_is_refused_and_kept_never_dropped(daemon, tmp_path):
    first, second = tmp_path / "a.dcm", tmp_path / "b.dcm"
    first.write_bytes(make_sr(sop_instance_uid="1.2.826.0.1.3680043.8.498.1", impression="Small left effusion."))
    second.write_bytes(make_sr(sop_instance_uid="1.2.826.0.1.3680043.8.498.1", impression="Large left effusion."))
    r = storescu(dicom_port(daemon), first)
    assert "Received Store Response (Success)" in r.stdout + r.stderr
    r = storescu(dicom_port(daemon), second, flag="-d")
    out = r.stdout + r.stderr
    assert "0xc000: Error: Cannot understand" in out and "a different report under a used SOP Instance UID" in out, out
    docs = [d for d in documents(daemon) if d.kind.startswith("dicom:")]
    assert len(docs) == 1
    [letter] = dead_letters(daemon)
    assert "different report under a used SOP Instance UID" in letter.reason


def test_truncated_and_mismatched_files_are_refused_with_the_reason():
    raw = make_sr(impression="No pneumothorax on the left side.")
    with pytest.raises(InvalidMessage, match="incomplete"):
        parse_dicom(raw[:-30])
    from io import BytesIO

    import pydicom

    from appliance.ingest.dicom.complete import part10_body

    uid = str(pydicom.dcmread(BytesIO(raw)).SOPInstanceUID).encode()
    meta_end = len(raw) - len(part10_body(raw)[0])
    other = uid[:-1] + (b"1" if uid[-1:] != b"1" else b"2")  # the same length: the meta stays well formed
    mismatched = raw[:meta_end].replace(uid, other) + raw[meta_end:]
    with pytest.raises(InvalidMessage, match="SOP Instance UID differs"):
        parse_dicom(mismatched)
    parse_dicom(raw)  # the whole file reads


def test_an_association_aborted_mid_dataset_leaves_a_dead_letter_and_a_log_line(daemon):
    """A PACS that aborts (or drops) while a dataset is on its way got no answer: the part that
    arrived is kept as a dead letter, so a cut-off study is visible rather than missing."""
    from appliance.api.dicom import _uid, _us
    from dicom_client import associate_rq, pdu, read_pdu

    sr_class = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    command = encode_command([(0x0002, _uid(sr_class)), (0x0100, _us(0x0001)), (0x0110, _us(7)),
                              (0x0700, _us(0)), (0x0800, _us(0x0000)), (0x1000, _uid("1.2.3.4.5.6.7.8"))])
    port = dicom_port(daemon)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(associate_rq("APPLIANCE", abstract=sr_class))
        kind, _ = read_pdu(s)
        assert kind == 0x02
        s.sendall(pdu(0x04, struct.pack(">IBB", len(command) + 2, 1, 3) + command))
        part = bytes(range(256)) * 8  # the first 2 KB of a dataset, not the last fragment
        s.sendall(pdu(0x04, struct.pack(">IBB", len(part) + 2, 1, 0) + part))
        s.sendall(pdu(0x07, bytes(4)))  # A-ABORT
    ctl = [sys.executable, "-m", "appliance.cli.main", "--config", str(daemon.config), "deadletters"]
    deadline = time.monotonic() + 20
    listing = ""
    while time.monotonic() < deadline and "unfinished" not in listing:
        listing = subprocess.run(ctl, capture_output=True, text=True, timeout=60).stdout
        time.sleep(0.2)
    assert "unfinished" in listing and "2048 bytes" in listing, listing
    assert "dataset unfinished at association end" in daemon.output()
