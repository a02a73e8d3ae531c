"""Builds DICOM structured reports for tests: our own synthetic patients, written with pydicom
the way a reporting system writes a Basic Text SR (TID 2000-like: headings, TEXT, PNAME)."""
from __future__ import annotations

from io import BytesIO

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def _code(value: str, meaning: str, scheme: str = "DCM") -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


def _item(value_type: str, concept: Dataset, relation: str = "CONTAINS", **values) -> Dataset:
    it = Dataset()
    it.RelationshipType = relation
    it.ValueType = value_type
    it.ConceptNameCodeSequence = [concept]
    for k, v in values.items():
        setattr(it, k, v)
    return it


def part10(ds: Dataset) -> bytes:
    """`ds` as a DICOM file (Explicit VR Little Endian, with its file meta)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def make_sr(*, patient_name: str = "WHITAKER^ELEANOR^M", patient_id: str = "MRN4471902",
            findings: str = "", impression: str = "No acute cardiopulmonary process.",
            reader: str = "OKAFOR^CHIDI", sop_instance_uid: str | None = None) -> bytes:
    findings = findings or ("Eleanor Whitaker, MRN4471902, seen 03/12/2024. Heart size normal. "
                            "Lungs clear. No pleural effusion. Compared with the study of 01/02/2023.")
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = BASIC_TEXT_SR
    ds.SOPInstanceUID = sop_instance_uid or generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "SR"
    ds.PatientName, ds.PatientID, ds.IssuerOfPatientID = patient_name, patient_id, "HOSP"
    ds.PatientBirthDate, ds.PatientSex = "19580312", "F"
    ds.ReferringPhysicianName = "BRANDT^LUCIA"
    ds.AccessionNumber, ds.StudyDate, ds.ContentDate, ds.ContentTime = "ACC7781", "20240312", "20240312", "101500"
    ds.InstitutionName = "Riverside General"
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = [_code("18748-4", "Diagnostic Imaging Report", "LN")]
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    observer = _item("PNAME", _code("121008", "Person Observer Name"), "HAS OBS CONTEXT", PersonName=reader)
    f_sec = _item("CONTAINER", _code("121070", "Findings"), ContinuityOfContent="SEPARATE")
    f_sec.ContentSequence = [_item("TEXT", _code("121071", "Finding"), TextValue=findings)]
    i_sec = _item("CONTAINER", _code("121072", "Impressions"), ContinuityOfContent="SEPARATE")
    i_sec.ContentSequence = [_item("TEXT", _code("121073", "Impression"), TextValue=impression)]
    ds.ContentSequence = [observer, f_sec, i_sec]
    return part10(ds)


def make_pdf(lines: list[str]) -> bytes:
    """A minimal one-page PDF whose text layer holds `lines` (an empty list: a page with no text,
    as a scanned image would be)."""
    ops = "BT /F1 11 Tf 72 720 Td 14 TL " + " ".join(
        "(" + ln.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") Tj T*" for ln in lines) + " ET"
    objs = ["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            "/Resources << /Font << /F1 5 0 R >> >> >>",
            f"<< /Length {len(ops)} >>\nstream\n{ops}\nendstream",
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def make_encapsulated_pdf(pdf: bytes, *, patient_name: str = "WHITAKER^ELEANOR", patient_id: str = "MRN4471902",
                          sop_instance_uid: str | None = None) -> bytes:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"  # Encapsulated PDF Storage
    ds.SOPInstanceUID = sop_instance_uid or generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "DOC"
    ds.PatientName, ds.PatientID, ds.IssuerOfPatientID = patient_name, patient_id, "HOSP"
    ds.PatientBirthDate = "19580312"
    ds.AccessionNumber = "ACC-PDF1"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.DocumentTitle = "Radiology report"
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    return part10(ds)
