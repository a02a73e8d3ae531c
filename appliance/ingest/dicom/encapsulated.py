"""Reports a PACS sends as documents inside DICOM: Encapsulated PDF (text extracted with pypdf)
and Encapsulated CDA (the narrative of its sections). An image-only PDF has no text to read: it is
refused with that reason (OCR is not done here)."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from io import BytesIO

from ...errors import InvalidMessage

MAX_PAGES = 100  # a report is a few pages; more is a scanned chart, not a report

ENCAPSULATED_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.104.2": "Encapsulated CDA",
}


def pdf_text(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(BytesIO(data))
        if reader.is_encrypted:
            raise InvalidMessage("the encapsulated PDF is encrypted: send it without a password")
        if len(reader.pages) > MAX_PAGES:
            raise InvalidMessage(f"the encapsulated PDF has {len(reader.pages)} pages; at most {MAX_PAGES} are read")
        pages = [page.extract_text() or "" for page in reader.pages]
    except InvalidMessage:
        raise
    except (PdfReadError, Exception) as e:  # noqa: BLE001 - pypdf on a broken file raises many kinds
        raise InvalidMessage(f"the encapsulated PDF is not readable ({type(e).__name__})") from None
    text = "\n".join(p.strip() for p in pages if p.strip())
    if len(re.findall(r"[A-Za-z]{3,}", text)) < 3:
        raise InvalidMessage("the encapsulated PDF has no text layer (an image of a page): send the report as "
                             "text, an SR, or a PDF with text")
    return text


def cda_text(data: bytes) -> str:
    """The narrative blocks (<text>) of a CDA document's sections, with their titles."""
    try:
        # ElementTree resolves no external entity, and Python 3.11's expat (2.5) refuses
        # entity-expansion bombs; the dataset is already capped at dicom.max_dataset_bytes.
        root = ET.fromstring(data)  # noqa: S314
    except ET.ParseError as e:
        raise InvalidMessage(f"the encapsulated CDA is not well-formed XML (line {e.position[0]})") from None
    lines: list[str] = []
    for section in root.iter():
        if not section.tag.endswith("}section") and section.tag != "section":
            continue
        for child in section:
            name = child.tag.rsplit("}", 1)[-1]
            if name == "title" and (child.text or "").strip():
                lines.append((child.text or "").strip().upper() + ":")
            elif name == "text":
                body = " ".join(t.strip() for t in child.itertext() if t.strip())
                if body:
                    lines.append(body)
    text = "\n".join(lines)
    if not re.search(r"[A-Za-z]{3,}", text):
        raise InvalidMessage("the encapsulated CDA has no narrative text in its sections")
    return text
