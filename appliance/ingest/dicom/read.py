"""DICOM bytes (a Part 10 file, or a bare dataset received over the network) to a Document.

Only structured reports carry report text; any other SOP class is refused with a reason that
names it. Every person, ID, date and address the header declares becomes a known identifier,
found later in the report text in any case and order."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import logging
from dataclasses import dataclass
from io import BytesIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from ...domain import Document, KnownIdentifiers, PersonName
from ...errors import InvalidMessage
from ..limits import MAX_REPORT_CHARS, too_long
from .complete import check_complete, part10_body
from .encapsulated import ENCAPSULATED_CLASSES, cda_text, pdf_text
from .sr import people, read_content

T = TypeVar("T")

# pydicom's reading warnings quote element values (a patient's name among them): never log
# them. Invalid values still fail where the appliance reads them, with a reason and no value.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
logging.getLogger("pydicom").propagate = False
logging.getLogger("pydicom").addHandler(logging.NullHandler())

# Structured report storage classes (PS3.4 B.5) whose content tree holds the report.
SR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR",
    "1.2.840.10008.5.1.4.1.1.88.35": "Extensible SR",
}

_PATIENT_PN = ("PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName")
_OTHER_PN = ("ReferringPhysicianName", "PerformingPhysicianName", "NameOfPhysiciansReadingStudy",
             "OperatorsName", "PhysiciansOfRecord", "RequestingPhysician", "ScheduledPerformingPhysicianName",
             "ResponsiblePerson", "ContentCreatorName")
_OBSERVER_SEQ = (("VerifyingObserverSequence", "VerifyingObserverName"),
                 ("AuthorObserverSequence", "PersonName"), ("ParticipantSequence", "PersonName"))
_IDS = ("PatientID", "AccessionNumber", "StudyID", "MedicalRecordLocator", "PatientInsurancePlanCodeSequence")
_DATES = ("PatientBirthDate", "StudyDate", "SeriesDate", "ContentDate", "AcquisitionDate", "AdmittingDate")
_ADDRESSES = ("PatientAddress", "InstitutionAddress", "ReferringPhysicianAddress", "InstitutionName",
              "InstitutionalDepartmentName")
_PHONES = ("PatientTelephoneNumbers", "ReferringPhysicianTelephoneNumbers")


@dataclass(frozen=True)
class ParsedDicom:
    document: Document
    sop_class_uid: str
    sop_instance_uid: str


def is_dicom_file(raw: bytes) -> bool:
    return len(raw) >= 132 and raw[128:132] == b"DICM"


def read_dataset(raw: bytes, transfer_syntax: str = "") -> Dataset:
    """A Part 10 file, or (with `transfer_syntax`) a dataset as it arrives in C-STORE; refused
    when it did not arrive whole (complete.check_complete)."""
    if transfer_syntax:
        _check_whole(raw, transfer_syntax)
    else:
        body = part10_body(raw)
        if body is not None:
            _check_whole(*body)
    try:
        if transfer_syntax:
            ts = UID(transfer_syntax)
            ds = pydicom.filereader.read_dataset(BytesIO(raw), ts.is_implicit_VR, ts.is_little_endian)
        else:
            ds = pydicom.dcmread(BytesIO(raw), stop_before_pixels=True)
        return ds
    except InvalidDicomError:
        raise InvalidMessage("not a DICOM Part 10 file (no DICM prefix); send the file as written by the "
                             "modality or PACS") from None
    except Exception as e:  # noqa: BLE001 - pydicom on corrupt input raises OSError, struct.error, IndexError ... (fuzzed)
        raise InvalidMessage(f"DICOM dataset not readable ({type(e).__name__}); the file may be truncated "
                             "or use an unsupported encoding") from None


DEFLATED = "1.2.840.10008.1.2.1.99"


def _check_whole(data: bytes, transfer_syntax: str) -> None:
    if transfer_syntax == DEFLATED or not transfer_syntax:
        return  # compressed as a whole: zlib itself refuses a cut stream
    try:
        ts = UID(transfer_syntax)
        implicit, little = ts.is_implicit_VR, ts.is_little_endian
    except (ValueError, AttributeError):
        return  # an unknown transfer syntax is refused by the reader, with its own reason
    check_complete(data, implicit, little)


def _values(ds: Dataset, keyword: str) -> list[Any]:
    v = ds.get(keyword)
    if v is None or v == "":
        return []
    if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
        return [x for x in v if str(x).strip()]
    return [v]


def known_identifiers(ds: Dataset, sr_people: list[PersonName], sr_dates: list[str]) -> KnownIdentifiers:
    patients = [p for k in _PATIENT_PN for v in _values(ds, k) for p in people(v)]
    others = [p for k in _OTHER_PN for v in _values(ds, k) for p in people(v)]
    for seq_kw, pn_kw in _OBSERVER_SEQ:
        for item in ds.get(seq_kw) or []:
            others += [p for v in _values(item, pn_kw) for p in people(v)]
    others += sr_people
    ids = [str(v).strip() for k in _IDS if k != "PatientInsurancePlanCodeSequence" for v in _values(ds, k)]
    for item in ds.get("OtherPatientIDsSequence") or []:
        ids += [str(v).strip() for v in _values(item, "PatientID")]
    birth = str(ds.get("PatientBirthDate", "") or "")
    pid = str(ds.get("PatientID", "") or "").strip()
    issuer = str(ds.get("IssuerOfPatientID", "") or "").strip()
    first = next((p for p in patients if not p.is_empty()), PersonName())
    key = f"{issuer}|{pid}" if pid else f"name|{first.family.upper()}|{first.given.upper()}|{birth}"

    def uniq(xs: Iterable[T]) -> tuple[T, ...]:
        return tuple(dict.fromkeys(x for x in xs if x))

    return KnownIdentifiers(
        patient_key=key,
        patient_names=uniq(p for p in patients if not p.is_empty()),
        other_names=uniq(p for p in others if not p.is_empty()),
        record_numbers=uniq(ids),
        dates=uniq([str(v) for k in _DATES for v in _values(ds, k)] + sr_dates),
        addresses=uniq(str(v).strip() for k in _ADDRESSES for v in _values(ds, k)),
        phones=uniq(str(v).strip() for k in _PHONES for v in _values(ds, k)),
        birth_date=birth,
    )


def sr_status(ds: Dataset) -> str:
    """An SR is final only when COMPLETE and VERIFIED (PS3.3 C.17.2); otherwise preliminary."""
    try:
        completion = str(ds.get("CompletionFlag", "") or "").upper()
        verification = str(ds.get("VerificationFlag", "") or "").upper()
    except (ValueError, TypeError, KeyError):
        return ""
    if not completion and not verification:
        return ""
    return "final" if completion == "COMPLETE" and verification == "VERIFIED" else "preliminary"


def _encapsulated(ds: Dataset, sop_class: str, sop_instance: str, source: str) -> ParsedDicom:
    """An Encapsulated PDF or CDA: its text, and the header's names seed the scrubber like an SR's."""
    try:
        data = bytes(ds.get("EncapsulatedDocument") or b"")
        known = known_identifiers(ds, [], [])
    except Exception as e:  # noqa: BLE001 - a corrupt header (fuzzed)
        raise InvalidMessage(f"DICOM header not readable ({type(e).__name__})") from None
    if not data:
        raise InvalidMessage("EncapsulatedDocument (0042,0011) is empty: no report to read")
    text = pdf_text(data) if ENCAPSULATED_CLASSES[sop_class] == "Encapsulated PDF" else cda_text(data)
    if len(text) > MAX_REPORT_CHARS:
        raise InvalidMessage(too_long(len(text)))
    doc = Document(kind=f"dicom:{ENCAPSULATED_CLASSES[sop_class]}", source=source, text=text, known=known,
                   document_ref=str(ds.get("AccessionNumber", "") or "") or sop_instance, result_status=sr_status(ds))
    return ParsedDicom(doc, sop_class, sop_instance)


def parse_dicom(raw: bytes, *, source: str = "", transfer_syntax: str = "") -> ParsedDicom:
    ds = read_dataset(raw, transfer_syntax)
    try:
        sop_class = str(ds.get("SOPClassUID", "") or "")
        sop_instance = str(ds.get("SOPInstanceUID", "") or "")
    except Exception as e:  # noqa: BLE001 - lazily decoded values of a corrupt file (fuzzed)
        raise InvalidMessage(f"DICOM header not readable ({type(e).__name__})") from None
    if not sop_instance:
        raise InvalidMessage("SOPInstanceUID (0008,0018) missing: every DICOM instance needs one")
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        # In C-STORE the file meta holds the command's Affected SOP Class and Instance UIDs.
        try:
            media_instance = str(meta.get("MediaStorageSOPInstanceUID", "") or "")
            media_class = str(meta.get("MediaStorageSOPClassUID", "") or "")
        except Exception as e:  # noqa: BLE001 - lazily decoded values of a corrupt file meta (fuzzed)
            raise InvalidMessage(f"DICOM file meta information not readable ({type(e).__name__})") from None
        if media_instance and media_instance != sop_instance:
            raise InvalidMessage("the command's (or file meta's) SOP Instance UID differs from the dataset's "
                                 "SOPInstanceUID (0008,0018): which instance this is cannot be told")
        if media_class and sop_class and media_class != sop_class:
            raise InvalidMessage("the command's (or file meta's) SOP Class UID differs from the dataset's "
                                 "SOPClassUID (0008,0016)")
    if sop_class in ENCAPSULATED_CLASSES:
        return _encapsulated(ds, sop_class, sop_instance, source)
    if sop_class not in SR_CLASSES:
        name = UID(sop_class).name if sop_class else "none"
        raise InvalidMessage(f"SOP class {sop_class or '(missing)'} ({name}) carries no report text; accepted: "
                             + ", ".join([*SR_CLASSES.values(), *ENCAPSULATED_CLASSES.values()]))
    # Values decode lazily under the dataset's Specific Character Set, so a bad one, or a
    # malformed element, surfaces while the tree and the header are read.
    try:
        content = read_content(ds)
        known = known_identifiers(ds, content.people, content.dates)
    except Exception as e:  # noqa: BLE001 - any failure of a corrupt tree or header (fuzzed)
        raise InvalidMessage(f"SR content or header not readable ({type(e).__name__}); check the Specific "
                             "Character Set and the content tree") from None
    text = "\n".join(content.lines).strip()
    if not text or not content.findings:
        # A title and headings alone are no report (once stored as the single word of its title).
        raise InvalidMessage("SR has no text, code or measurement to summarise (only its title or headings)")
    if len(text) > MAX_REPORT_CHARS:
        raise InvalidMessage(too_long(len(text)))
    doc = Document(kind=f"dicom:{SR_CLASSES[sop_class]}", source=source, text=text, known=known,
                   document_ref=str(ds.get("AccessionNumber", "") or "") or sop_instance,
                   result_status=sr_status(ds), exam=study_description(ds))
    return ParsedDicom(doc, sop_class, sop_instance)


def study_description(ds: Dataset) -> str:
    """The worklist's exam: the study description, else the document's title (its concept name)."""
    text = str(ds.get("StudyDescription", "") or "").strip()
    if not text and ds.get("ConceptNameCodeSequence"):
        text = str(ds.ConceptNameCodeSequence[0].get("CodeMeaning", "") or "").strip()
    return text[:120]
