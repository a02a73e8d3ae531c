"""Input hygiene at intake (invented messages): the right HL7 error codes, bounded header fields,
bytes that break the declared character set refused with where, NUL removed, and no field
content quoted in a refusal's reason (reasons reach the log and the metrics' labels)."""
from __future__ import annotations

import pytest

from appliance.services.intake import IntakeService

SECRET = b"h" * 32


def oru(msh: str, obx_text: str = "FINDINGS: Small left effusion.") -> str:
    return (f"{msh}\rPID|1||8802^^^GH^MR||Quennell^Aurelie||19610203|F\rOBR|1|O1|A1|71020^CHEST XRAY^CPT\r"
            f"OBX|1|TX|18782-3^Study^LN||{obx_text}||||||F\r")


MSH = "MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261207101500||ORU^R01^ORU_R01|{cid}|P|2.5.1{tail}"


def submit(store, raw: bytes):
    return IntakeService(store, SECRET).submit(raw, transport="mllp")[0]


def err_code(ack: bytes) -> str:
    err = next(seg for seg in ack.decode(errors="replace").split("\r") if seg.startswith("ERR"))
    return err.split("|")[3].split("^")[0] if err.count("|") >= 3 else ""


def test_a_shifted_message_type_is_refused_without_quoting_it(store):
    r = submit(store, oru("MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261207101500||QUENNELL^AURELIE|C-1|P|2.5.1").encode())
    assert r.outcome == "REJECTED" and "MSH-9" in r.reason
    assert "QUENNELL" not in r.reason.upper() and "AURELIE" not in r.reason.upper()
    assert b"|102" in r.acks[0] or "102" in r.acks[0].decode()


def test_an_adt_event_that_is_no_code_is_refused(store):
    r = submit(store, oru("MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261207101500||ADT^QUENNELL|C-2|P|2.5.1").encode())
    assert r.outcome == "REJECTED" and "QUENNELL" not in r.reason.upper()


def test_a_version_that_is_no_version_is_not_quoted(store):
    r = submit(store, oru(MSH.format(cid="C-3", tail="").replace("|2.5.1", "|AURELIE")).encode())
    assert r.outcome == "REJECTED" and "MSH-12" in r.reason and "AURELIE" not in r.reason


def test_an_overlong_control_id_is_refused_and_echoed_bounded(store):
    cid = "X" * 5000
    r = submit(store, oru(MSH.format(cid=cid, tail="")).encode())
    assert r.outcome == "REJECTED" and "MSH-10" in r.reason and "5000 characters" in r.reason
    assert len(r.acks[0]) < 2000  # MSA-2 echoes at most 199 characters


def test_report_text_over_the_limit_is_a_data_type_error_not_a_missing_field(store):
    r = submit(store, oru(MSH.format(cid="C-4", tail=""), "x " * 150_000).encode())
    assert r.outcome == "REJECTED" and "characters; the most accepted is" in r.reason
    assert r.error is not None and r.error.hl7_error_code == "102"


def test_invalid_utf8_under_a_declared_utf8_is_refused_with_where(store):
    msh = MSH.format(cid="C-5", tail="||||||UNICODE UTF-8")
    raw = oru(msh, "FINDINGS: effusion \udcff").encode("utf-8", "surrogateescape")
    r = submit(store, raw)
    assert r.outcome == "REJECTED" and "not valid UTF-8" in r.reason and "offset" in r.reason
    assert r.dead_letter_id


def test_undeclared_latin1_is_still_accepted(store):
    raw = oru(MSH.format(cid="C-6", tail=""), "FINDINGS: épanchement pleural.").encode("latin-1")
    assert submit(store, raw).outcome == "ACCEPTED"


def test_nul_bytes_are_removed_from_stored_text(store):
    r = submit(store, oru(MSH.format(cid="C-7", tail=""), "FINDINGS: small\x00 left\x00 effusion.").encode())
    assert r.outcome == "ACCEPTED"
    doc = store.get_document(r.document_id)
    assert "\x00" not in doc.deid_text and "small left effusion" in doc.deid_text


@pytest.mark.parametrize("field", [3, 4, 5, 6, 8, 9, 11, 12, 15, 16])
def test_a_name_in_any_header_field_never_reaches_a_reason(store, field):
    parts = MSH.format(cid=f"C-{field}", tail="").split("|")
    while len(parts) <= field - 1:
        parts.append("")
    parts[field - 1] = "QUENNELL^AURELIE"
    r = submit(store, oru("|".join(parts)).encode())
    assert "QUENNELL" not in (r.reason or "").upper() and "AURELIE" not in (r.reason or "").upper()
