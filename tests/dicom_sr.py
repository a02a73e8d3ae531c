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
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
