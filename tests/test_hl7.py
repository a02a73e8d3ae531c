"""HL7 v2 parsing, acknowledgements and intake semantics, through the real parser and a real
SQLCipher store (the gRPC and MLLP transports have their own tests)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from appliance.errors import InvalidMessage
from appliance.ingest.hl7.ack import acks_for, build_ack
from appliance.ingest.hl7.er7 import decode_message, split_batch, split_segments
from appliance.ingest.hl7.escape import escape, unescape
from appliance.ingest.hl7.header import read_header
from appliance.ingest.hl7.parse import parse
from appliance.services.intake import IntakeService
from appliance.store import open_store
from appliance.store.keys import write_new_key
from conftest import DATA, SAMPLE

CORPUS = DATA / "hl7corpus"
VECTORS = json.loads((CORPUS / "python-hl7" / "escape_vectors.json").read_text())


@pytest.fixture
def intake(store):
    return IntakeService(store, b"k" * 32)


@pytest.mark.parametrize("escaped,plain", [v for v in VECTORS["unescape"] if "\\H\\" not in v[0]])
def test_unescape_python_hl7_vectors(escaped, plain):
    assert unescape(escaped) == plain


def test_highlight_markers_vanish_and_formatting_becomes_lines():
    assert unescape("\\H\\text\\N\\") == "text"
    assert unescape("line one\\.br\\line two\\.sp2\\end") == "line one\nline two\n\nend"


@pytest.mark.parametrize("plain", ["a|b", "x^y~z&w", "back\\slash", "plain"])
def test_escape_round_trips(plain):
    assert unescape(escape(plain)) == plain


def test_custom_delimiters_are_honoured():
    assert unescape("a#F#b#S#c", "$%#@") == "a|b$c"


@pytest.mark.parametrize("ending", [b"\r", b"\n", b"\r\n"])
def test_segment_endings_and_bom(ending):
    raw = SAMPLE.read_bytes().replace(b"\r", ending)
    for data in (raw, b"\xef\xbb\xbf" + raw):
        p = parse(decode_message(data))
        assert p.header.control_id == "DEMO-0001"
        assert "spiculated nodule" in p.document.text


def test_latin1_declared_in_msh18_is_decoded():
    raw = SAMPLE.read_bytes().replace(b"UNICODE UTF-8", b"8859/1").replace(b"cough", "t\xf6ss".encode("latin-1"))
    assert "t\u00f6ss" in parse(decode_message(raw)).document.text


def test_report_text_in_order_with_formatted_text_decoded():
    doc = parse(decode_message(SAMPLE.read_bytes())).document
    text = doc.text
    assert text.index("CLINICAL HISTORY") < text.index("FINDINGS") < text.index("IMPRESSION")
    assert "previously 1.2 cm.\nEnlarged right hilar" in text  # \.br\ became a line break
    assert "\\" not in text


def test_identifiers_from_pid_pv1_and_providers():
    k = parse(decode_message(SAMPLE.read_bytes())).known
    assert k.patient_names[0].family == "Whitaker" and k.patient_names[0].given == "Eleanor"
    assert "MRN4471902" in k.record_numbers and k.birth_date == "19580312"
    assert "42 Birchwood Lane" in k.addresses and "62704" in k.postal_codes
    assert any(n.family == "Okafor" for n in k.other_names)
    assert k.patient_key == "GH|MRN4471902"


def test_repetitions_and_z_segments_are_tolerated():
    raw = SAMPLE.read_bytes().replace(b"PID|1||MRN4471902^^^GH^MR", b"PID|1||MRN4471902^^^GH^MR~ALT77^^^X^PI")
    raw += b"ZDS|custom|data\r"
    p = parse(decode_message(raw))
    assert {"MRN4471902", "ALT77"} <= set(p.known.record_numbers)


@pytest.mark.parametrize("name,needle", [
    ("msh_present_but_missing_msh-9.hl7", "MSH-9"), ("msh_present_but_missing_msh-10.hl7", "MSH-10"),
    ("msh_present_but_missing_msh-2.hl7", "MSH-2"), ("empty.hl7", "MSH"),
])
def test_nak_ar_when_msh_is_malformed(intake, name, needle):
    r = intake.submit((CORPUS / "cdc-trusted-intermediary" / "Test" / "Message" / name).read_bytes(), transport="t")
    assert len(r) == 1 and r[0].outcome == "REJECTED" and needle in r[0].reason and r[0].dead_letter_id
    assert b"MSA|AR" in r[0].acks[0]


def test_nak_ar_for_unknown_segment_names_the_segment(intake):
    r = intake.submit(SAMPLE.read_bytes() + b"XYZ|1|2\r", transport="t")[0]
    assert r.outcome == "REJECTED" and "XYZ" in r.reason


def test_ack_swaps_applications_and_uses_sender_delimiters():
    raw = SAMPLE.read_bytes().replace(b"|^~\\&|", b"|^~\\&|", 1)
    h = read_header(split_segments(decode_message(raw))[0])
    ack = build_ack(h, "AA").decode()
    msh, msa = ack.split("\r")[:2]
    f = msh.split("|")
    assert f[2] == "APPLIANCE" and f[4] == "RIS" and f[8] == "ACK^R01^ACK" and f[11] == "2.5.1"
    assert msa == "MSA|AA|DEMO-0001"


def test_ack_with_custom_delimiters():
    raw = SAMPLE.read_bytes().decode().replace("|", "!").replace("^", "$").encode()
    raw = raw.replace(b"MSH!$~\\&!", b"MSH!$~\\&!")
    h = read_header(split_segments(decode_message(raw))[0])
    err = InvalidMessage("a!b", segment="PID", field=3, hl7_error_code="101")
    ack = acks_for(h, False, err)[0].decode()
    assert ack.startswith("MSH!$~\\&!") and "!ACK$R01$ACK!" in ack
    assert "MSA!CR!DEMO-0001" in ack and "PID$1$3" in ack and "a\\F\\b" in ack  # enhanced mode: CR


def test_enhanced_mode_acks():
    raw = decode_message(SAMPLE.read_bytes())
    h = read_header(split_segments(raw)[0])  # MSH-15 AL, MSH-16 NE
    assert [a.split(b"\r")[1][:6] for a in acks_for(h, True, None)] == [b"MSA|CA"]
    err = InvalidMessage("bad", ack_code="AR")
    assert [a.split(b"\r")[1][:6] for a in acks_for(h, False, err)] == [b"MSA|CR"]


def test_duplicate_is_acknowledged_identically_and_stored_once(intake, store):
    first = intake.submit(SAMPLE.read_bytes(), transport="t")[0]
    again = intake.submit(SAMPLE.read_bytes(), transport="t")[0]
    assert first.outcome == "ACCEPTED" and again.outcome == "DUPLICATE"
    assert again.document_id == first.document_id and again.acks == first.acks
    assert store.count_documents() == 1


def test_batch_gets_one_result_per_message(intake):
    rs = intake.submit((CORPUS / "python-hl7" / "sample_batch1.hl7").read_bytes(), transport="t")
    assert len(rs) >= 2 and all(r.header is not None for r in rs)
    assert len({r.header.control_id for r in rs}) == len(rs)


def test_adt_updates_identifiers_that_later_reports_are_scrubbed_with(intake, store):
    adt = (b"MSH|^~\\&|HIS|GH|APPLIANCE|GH|20260101||ADT^A08^ADT_A01|ADT-1|P|2.5\r"
           b"PID|1||MRN4471902^^^GH^MR||Whitaker^Eleanor||19580312|F|||||||||||||||||||||\r"
           b"NK1|1|Whitaker^Rosalind^^^^^L|DAU^Daughter\r")
    assert intake.submit(adt, transport="t")[0].outcome == "UPDATED"
    report = SAMPLE.read_bytes().replace(b"persistent cough", b"persistent cough, daughter Rosalind present")
    r = intake.submit(report, transport="t")[0]
    text = store.get_document(r.document_id).deid_text
    assert "Rosalind" not in text and "Whitaker" not in text


def test_adt_a40_merge_moves_documents_to_the_surviving_patient(intake, store):
    r = intake.submit(SAMPLE.read_bytes(), transport="t")[0]
    old_ref = store.get_document(r.document_id).patient_ref
    merge = (b"MSH|^~\\&|HIS|GH|APPLIANCE|GH|20260101||ADT^A40^ADT_A39|MRG-1|P|2.5\r"
             b"EVN|A40|20260101\r"
             b"PID|1||NEW123^^^GH^MR||Whitaker^Eleanor||19580312|F\r"
             b"MRG|MRN4471902^^^GH^MR\r")
    assert intake.submit(merge, transport="t")[0].outcome == "UPDATED"
    new_ref = intake.patient_ref("GH|NEW123")
    assert store.get_document(r.document_id).patient_ref == new_ref != old_ref
    assert "Whitaker" in {n.family for n in store.patient_known(new_ref).patient_names}


def test_mdm_replacement_supersedes_the_original(intake, store):
    t02 = (CORPUS / "fhir-converter-hl7v2" / "Hl7v2" / "MDM-T02-01.hl7").read_bytes()
    t10 = (CORPUS / "fhir-converter-hl7v2" / "Hl7v2" / "MDM-T10-01.hl7").read_bytes()
    t10 = t10.replace(b"PS1-20080131160038|P", b"PS1-REPLACEMENT-1|P")
    first = intake.submit(t02, transport="t")[0]
    second = intake.submit(t10, transport="t")[0]
    assert first.outcome == second.outcome == "ACCEPTED"
    old = store.get_document(first.document_id)
    assert old.status == "SUPERSEDED" and old.superseded_by == second.document_id


def _corpus_files() -> list[Path]:
    out = []
    for f in sorted(CORPUS.rglob("*")):
        if f.suffix in (".hl7", ".txt") and not f.name.startswith(("LICENSE", "README")) \
                and not f.name.endswith("output.txt"):
            out.append(f)
    return out


@pytest.mark.parametrize("path", _corpus_files(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_every_corpus_file_is_accepted_with_text_or_refused_with_a_reason(tmp_path, path):
    logging.disable(logging.WARNING)
    try:
        write_new_key(tmp_path / "k")
        s = open_store(tmp_path / "a.db", tmp_path / "k")
        svc = IntakeService(s, b"k" * 32)
        for r in svc.submit(path.read_bytes(), transport="t"):
            if r.outcome == "ACCEPTED":
                assert s.get_document(r.document_id).deid_text.strip()
            elif r.outcome in ("REJECTED", "ERROR"):
                assert r.reason and r.reason != "error" and r.dead_letter_id
                assert r.acks and (b"MSA|AR" in r.acks[0] or b"MSA|AE" in r.acks[0] or b"MSA|CR" in r.acks[0]
                                   or b"MSA|CE" in r.acks[0] or b"MSA" in r.acks[0])
            else:
                assert r.outcome in ("UPDATED", "DUPLICATE")
        s.close()
    finally:
        logging.disable(logging.NOTSET)


def test_split_batch_skips_envelopes():
    text = decode_message((CORPUS / "nextgen-connect" / "test-hl7-batch-input.txt").read_bytes())
    msgs = split_batch(text)
    assert msgs and all(m.startswith("MSH") for m in msgs)


def _leaves_from_xml(path: Path) -> dict[tuple, str]:
    """NextGen Connect's golden XML -> {(segment#, field, repetition, component, sub): value}."""
    import xml.etree.ElementTree as ET

    out: dict[tuple, str] = {}
    segs = [s for s in ET.parse(path).getroot() if s.tag not in ("FHS", "BHS", "BTS", "FTS")]
    for si, seg in enumerate(segs):
        reps: dict[str, int] = {}
        for field in seg:
            n = int(field.tag.split(".")[1])
            r = reps[field.tag] = reps.get(field.tag, -1) + 1
            if seg.tag == "MSH" and n <= 2:
                continue
            if len(field) == 0:
                if (field.text or "").strip("\n "):
                    out[(si, n, r, 1, 1)] = field.text
                continue
            for comp in field:
                c = int(comp.tag.split(".")[2])
                if len(comp) == 0:
                    # Mirth keeps an unescaped "&" inside text (OBR-4.3 "W/&W/O"); HL7 v2 says it
                    # separates subcomponents, which is what the appliance does.
                    for s_i, part in enumerate((comp.text or "").split("&"), start=1):
                        if part:
                            out[(si, n, r, c, s_i)] = part
                    continue
                for sub in comp:
                    if sub.text:
                        out[(si, n, r, c, int(sub.tag.split(".")[3]))] = sub.text
    return out


def _leaves_from_er7(path: Path) -> dict[tuple, str]:
    text = decode_message(path.read_bytes())
    out: dict[tuple, str] = {}
    si = 0
    for message in split_batch(text):
        segs = split_segments(message)
        enc = segs[0].field(2)
        for seg in segs:
            for n in range(1, len(seg.fields)):
                if seg.name == "MSH" and n <= 2:
                    continue
                for r, rep in enumerate(seg.fields[n].split(enc[1])):
                    for c, comp in enumerate(rep.split(enc[0]), start=1):
                        for s, sub in enumerate(comp.split(enc[3]), start=1):
                            if sub:
                                out[(si, n, r, c, s)] = sub
            si += 1
    return out


@pytest.mark.parametrize("stem", ["test-hl7", "test-hl7-repetitions", "test-hl7-subcomponents", "test-hl7-whitespace",
                                  "test-hl7-batch"])
def test_er7_structure_matches_nextgen_golden_xml(stem):
    folder = CORPUS / "nextgen-connect"
    ours = _leaves_from_er7(folder / f"{stem}-input.txt")
    golden = _leaves_from_xml(folder / f"{stem}-output.xml")
    assert ours == golden


def test_appliancectl_validate_runs_hl7apy_offline():
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "appliance.cli.main", "validate", str(SAMPLE)], capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0 and "message 1: OK" in ok.stdout
    bad = CORPUS / "cdc-trusted-intermediary" / "Test" / "Message" / "msh_present_but_missing_msh-9.hl7"
    r = subprocess.run([sys.executable, "-m", "appliance.cli.main", "validate", str(bad)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "MSH-9" in r.stdout
