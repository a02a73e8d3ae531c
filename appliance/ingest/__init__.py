"""Bytes from the hospital's systems -> Document. Only this package knows HL7 and DICOM."""
