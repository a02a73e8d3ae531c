"""DICOM intake: structured reports (SR) to report text plus the identifiers the header and
the content tree declare."""
