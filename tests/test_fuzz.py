"""Bounded fuzzing in CI (hypothesis, a minute or so in all): the HL7 parser and intake, the MLLP
framer over a real socket, the DICOM dataset reader and the SR walker. No input may crash,
hang or be answered with anything but a result or a clear refusal. Inputs found to break
something are kept below as regression examples (@example)."""
from __future__ import annotations

import socket
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from appliance.config import MllpConfig
from appliance.errors import InvalidMessage
from appliance.ingest.hl7.ack import ack_plan
from appliance.ingest.dicom.read import parse_dicom
from appliance.services.intake import IntakeService
from conftest import DATA, SAMPLE
from mllp_client import MllpClient

SECRET = b"f" * 32
FUZZ = settings(max_examples=600, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])
SEGMENTS = ["MSH", "PID", "PV1", "OBR", "OBX", "NTE", "TXA", "MRG", "EVN", "ORC", "FHS", "BHS", "ZZZ", "<OR"]
FIELD = st.text(alphabet=st.sampled_from(list("abcXYZ019 ^~\\&|.-/:#\u00e9\u4e2d")), max_size=30)


@st.composite
def hl7ish(draw) -> bytes:
    """Messages shaped like HL7: real segment names, delimiters, escapes, wrong counts."""
    version = draw(st.sampled_from(["2.3", "2.5.1", "2.8", "9.9", ""]))
    mtype = draw(st.sampled_from(["ORU^R01", "ADT^A08", "ADT^A40", "MDM^T02", "ADT^A03", "SIU^S12", "", "^"]))
    msh = f"MSH|^~\\&|A|B|C|D|20261201||{mtype}|{draw(FIELD)}|P|{version}"
    segs = [msh] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(0, 8))):
        name = draw(st.sampled_from(SEGMENTS))
        segs.append(name + "|" + "|".join(draw(st.lists(FIELD, max_size=26))))
    sep = draw(st.sampled_from(["\r", "\n", "\r\n"]))
    return sep.join(segs).encode("utf-8")


@pytest.fixture
def intake(store):
    return IntakeService(store, SECRET)


def _answered(intake: IntakeService, raw: bytes) -> None:
    t = time.monotonic()
    prepared = intake.prepare_all(raw, transport="mllp")
    assert time.monotonic() - t < 5
    for p in prepared:
        if p.error is not None:
            # A refusal says why, with an ACK, unless the sender asked for none (enhanced mode, NE).
            assert p.error.reason and (p.acks or (p.header is not None and ack_plan(p.header).enhanced))
    for r in intake.commit_many(prepared):
        assert r.outcome in ("ACCEPTED", "DUPLICATE", "UPDATED", "REJECTED", "ERROR")


@FUZZ
@given(raw=hl7ish())
@example(raw=b"MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5.1\rPID|1||\\.sp99999999999999999999\\\rOBX|1|TX|||x\\.sp2000000\\")
@example(raw=b"MSH|")  # a header cut short
@example(raw=b"<?xml version='1.0'?><ORU_R01/>")
def test_hl7_intake_never_crashes_on_hl7_shaped_input(intake, raw):
    _answered(intake, raw)


@FUZZ
@given(raw=st.binary(max_size=2000))
def test_hl7_intake_never_crashes_on_bytes(intake, raw):
    _answered(intake, raw)


@FUZZ
@given(data=st.data())
def test_hl7_intake_survives_mutations_of_a_real_message(intake, data):
    base = bytearray(SAMPLE.read_bytes())
    for _ in range(data.draw(st.integers(1, 12))):
        i = data.draw(st.integers(0, len(base) - 1))
        base[i] = data.draw(st.integers(0, 255))
    _answered(intake, bytes(base))


SR_FILES = sorted((DATA / "dicom").glob("*.dcm"))


@FUZZ
@given(data=st.data())
def test_dicom_reader_and_sr_walker_refuse_or_read_every_mutation(data):
    raw = bytearray(data.draw(st.sampled_from(SR_FILES)).read_bytes())
    for _ in range(data.draw(st.integers(1, 16))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]  # truncated
    t = time.monotonic()
    try:
        parsed = parse_dicom(bytes(raw))
        assert parsed.document.text
    except InvalidMessage as e:
        assert e.reason
    assert time.monotonic() - t < 5


@pytest.fixture
def mllp_server(store):
    from appliance.api.mllp import MllpServer

    server = MllpServer(MllpConfig(port=0, max_frame_bytes=64 * 1024, idle_timeout_s=2, frame_timeout_s=2,
                                   allowed_peers=("127.0.0.1",)),
                        IntakeService(store, SECRET))
    server.start()
    yield server
    server.stop()


@FUZZ
@given(chunks=st.lists(st.binary(max_size=300), max_size=6),
       framing=st.lists(st.sampled_from([b"\x0b", b"\x1c", b"\r", b"\x1c\r", b"\n"]), max_size=6))
def test_mllp_framer_answers_or_closes_and_keeps_serving(mllp_server, chunks, framing):
    port = mllp_server.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            for i, c in enumerate(chunks):
                s.sendall((framing[i] if i < len(framing) else b"") + c)
            s.shutdown(socket.SHUT_WR)
        except OSError:  # broken pipe, reset, not connected: the listener refused and closed, an answer too
            pass
        s.settimeout(5)
        try:
            while s.recv(65536):
                pass  # ACKs or an AR, then the close
        except OSError:
            pass
    # The listener still serves the next sender.
    client = MllpClient(port, timeout=10)
    try:
        ack = client.request(SAMPLE.read_bytes())
    finally:
        client.close()
    assert ack is not None and b"MSA|" in ack
