"""One HL7 v2 message (text) -> ParsedMessage: header, declared identifiers, report Document."""
from __future__ import annotations

from dataclasses import dataclass

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message as hl7apy_parse

from ...domain import Document, KnownIdentifiers, MessageHeader
from ...errors import InvalidMessage
from ..limits import MAX_REPORT_CHARS, too_long
from .er7 import Segment, component, split_segments
from .escape import unescape
from .header import read_header
from .identifiers import extract
from .text import report_text
from .validate import check_structure

DOCUMENT_TYPES = {"ORU^R01", "MDM^T02", "MDM^T06", "MDM^T08", "MDM^T10"}
DEMOGRAPHIC_TYPES = {"ADT^A01", "ADT^A04", "ADT^A08", "ADT^A31"}
MERGE_TYPES = {"ADT^A40"}
SUPPORTED_TYPES = DOCUMENT_TYPES | DEMOGRAPHIC_TYPES | MERGE_TYPES


@dataclass(frozen=True)
class ParsedMessage:
    header: MessageHeader
    known: KnownIdentifiers
    document: Document | None  # None for ADT
    action: str  # "document" | "demographics" | "merge"
    prior_patient_key: str = ""  # ADT^A40: the identity merged away (MRG-1)
    # ORU^R01 may carry several PATIENT_RESULT groups: one document per patient, each with only
    # its own identifiers (`document` is the first, these the rest).
    more: tuple[Document, ...] = ()


def deep_validate(text: str) -> None:
    """hl7apy's full parse (~9 ms): for offline checks, not the ACK path."""
    try:
        hl7apy_parse(text, find_groups=False, validation_level=VALIDATION_LEVEL.TOLERANT)
    except HL7apyException as e:
        # hl7apy messages can quote field values; name only the kind of failure.
        raise InvalidMessage(f"HL7 structure not parsable ({type(e).__name__})",
                             hl7_error_code="100") from None
    except (ValueError, IndexError, KeyError, AttributeError, TypeError) as e:
        raise InvalidMessage(f"HL7 structure not parsable ({type(e).__name__})",
                             hl7_error_code="100") from None


def parse(text: str, *, source: str = "") -> ParsedMessage:
    segments = split_segments(text)
    header = read_header(segments[0])
    base_type = header.message_type.split("^")[0] + "^" + (header.message_type.split("^") + [""])[1]
    if base_type.startswith("ADT^") and base_type not in MERGE_TYPES:
        # Every other ADT event (A02 transfer, A03 discharge, A11 cancel ...) is accepted: refusing
        # them stalls a live ADT feed. Its PID still names the patient, so it seeds the scrubber.
        base_type = "ADT^A08"
    if base_type not in SUPPORTED_TYPES:
        raise InvalidMessage(f"message type {header.message_type} not supported; accepted: "  # a checked code
                             + ", ".join(sorted(SUPPORTED_TYPES - DEMOGRAPHIC_TYPES)) + " and every ADT event",
                             segment="MSH", field=9,
                             hl7_error_code="200")
    check_structure(segments, header.version)
    enc = header.encoding_chars
    names = {s.name for s in segments}
    if "PID" not in names:
        raise InvalidMessage("PID segment missing", segment="PID", hl7_error_code="100")
    known = extract(segments, enc)
    if base_type in DEMOGRAPHIC_TYPES:
        return ParsedMessage(header, known, None, "demographics")
    if base_type in MERGE_TYPES:
        mrg = next((s for s in segments if s.name == "MRG"), None)
        if mrg is None:
            raise InvalidMessage("MRG segment missing in ADT^A40", segment="MRG", hl7_error_code="100")
        prior_id = unescape(component(mrg.field(1), enc, 1), enc).strip()
        if not prior_id:
            raise InvalidMessage("MRG-1 (prior patient identifier) missing", segment="MRG", field=1,
                                 hl7_error_code="101")
        authority = unescape(component(mrg.field(1), enc, 4), enc).strip()
        return ParsedMessage(header, known, None, "merge", prior_patient_key=f"{authority}|{prior_id}")
    pids = [i for i, seg in enumerate(segments) if seg.name == "PID"]
    if base_type == "ORU^R01" and len(pids) > 1:
        lead = segments[:pids[0]]  # MSH, SFT: no patient in them
        groups = [lead + segments[a:b] for a, b in zip(pids, pids[1:] + [len(segments)], strict=True)]
        docs = []
        for group in groups:
            docs.append(_document(header, group, extract(group, enc), source))
        return ParsedMessage(header, docs[0].known, docs[0], "document", more=tuple(docs[1:]))
    return ParsedMessage(header, known, _document(header, segments, known, source), "document")


def _document(header: MessageHeader, segments: list[Segment], known: KnownIdentifiers,
              source: str) -> Document:
    enc = header.encoding_chars
    text = report_text(segments, enc)
    if not text:
        # AR, not AE: the same message will never have text, and engines resend on AE.
        raise InvalidMessage("no report text: no OBX or NTE segment carries text", segment="OBX",
                             field=5, hl7_error_code="101")
    if len(text) > MAX_REPORT_CHARS:
        raise InvalidMessage(too_long(len(text)), segment="OBX", field=5, hl7_error_code="102")
    txa = next((s for s in segments if s.name == "TXA"), None)
    doc_ref = replaces = ""
    if txa is not None:
        doc_ref = unescape(component(txa.field(12), enc, 1), enc).strip()
        if header.message_type.startswith("MDM^T08") or header.message_type.startswith("MDM^T10"):
            replaces = unescape(component(txa.field(13), enc, 1), enc).strip() or doc_ref
    status = ""
    obr = next((s for s in segments if s.name == "OBR"), None)
    exam = modality = priority = ""
    if obr is not None:
        exam = (unescape(component(obr.field(4), enc, 2), enc)
                or unescape(component(obr.field(4), enc, 1), enc)).strip()
        modality = unescape(component(obr.field(24), enc, 1), enc).strip().upper()[:8]
        tq1 = next((s for s in segments if s.name == "TQ1"), None)
        code = (component(tq1.field(9), enc, 1) if tq1 is not None else "") or component(obr.field(27), enc, 6) \
            or obr.field(5)
        priority = _PRIORITY.get(code.strip().upper()[:1], "")
    if txa is None and obr is not None:
        doc_ref = unescape(component(obr.field(3), enc, 1) or component(obr.field(2), enc, 1), enc)
        status = result_status(obr, [s for s in segments if s.name == "OBX"], enc)
        # A later result for the same order (final after preliminary, a correction, a
        # cancellation) replaces the earlier one; its summary is then marked stale.
        replaces = doc_ref.strip()
    return Document(kind=f"hl7:{header.message_type}", source=source or header.sending_app.split("^")[0],
                    text=text, known=known, header=header, replaces_control_id=replaces,
                    document_ref=doc_ref.strip(), result_status=status, exam=exam[:120], modality=modality,
                    priority=priority)


# HL7 table 0027 (TQ1-9, OBR-27.6, OBR-5): the order's priority as a ward says it.
_PRIORITY = {"S": "stat", "A": "asap", "R": "routine", "P": "pre-op", "C": "callback", "T": "timing critical"}


# HL7 table 0123 (OBR-25) and 0085 (OBX-11), read as what a clinician needs to know.
_STATUS = {"P": "preliminary", "R": "preliminary", "A": "preliminary", "I": "preliminary", "S": "preliminary",
           "F": "final", "C": "corrected", "X": "cancelled", "D": "cancelled", "W": "cancelled"}


def result_status(obr: Segment, obxs: list[Segment], enc: str) -> str:
    """OBR-25 when the sender states it; else the observations' OBX-11: any preliminary one makes
    the result preliminary, any corrected one corrected, all cancelled cancelled."""
    stated = unescape(obr.field(25), enc).strip().upper()[:1]
    if stated in _STATUS:
        return _STATUS[stated]
    seen = {_STATUS.get(unescape(o.field(11), enc).strip().upper()[:1], "") for o in obxs} - {""}
    for status in ("preliminary", "corrected"):
        if status in seen:
            return status
    if seen == {"cancelled"}:
        return "cancelled"
    return "final" if "final" in seen else ""
