"""An SR content tree as readable report text. Headings become section titles, TEXT items
their text, CODE/NUM/DATE items "Concept: value" lines. PNAME items are people (observers,
clinicians): their names seed the scrubber and never reach the text as themselves."""
from __future__ import annotations

from typing import Any

from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.valuerep import PersonName as DicomPN

from ...domain import PersonName

_MAX_DEPTH = 32  # a malicious tree must not exhaust the stack
# Context items that say how the report was made, not what it found
_NOISE = {"language of content item and descendants", "observation context mode", "observer type",
          "tracking unique identifier"}


@dataclass
class SrText:
    lines: list[str] = field(default_factory=list)
    people: list[PersonName] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    findings: int = 0  # lines that say something (not the title or a heading)


def person(pn: object) -> PersonName:
    """A DICOM PN value (family^given^middle^prefix^suffix) as a domain PersonName."""
    return people(pn)[0]


def people(pn: object) -> list[PersonName]:
    """Every component group of a PN: alphabetic, ideographic and phonetic ("Yamada^Tarou=
    山田^太郎=やまだ^たろう") are three spellings of one person, and the text may use any."""
    p = pn if isinstance(pn, DicomPN) else DicomPN(str(pn))
    out = []
    for group in p.components or ("",):
        parts = (group.split("^") + ["", "", "", ""])[:4]
        out.append(PersonName(family=parts[0].strip(), given=parts[1].strip(), middle=parts[2].strip(),
                              prefix=parts[3].strip()))
    return out


def _meaning(item: Dataset, keyword: str) -> str:
    seq = item.get(keyword)
    if seq:
        return str(seq[0].get("CodeMeaning", "")).strip()
    return ""


def read_content(root: Dataset) -> SrText:
    out = SrText()
    title = _meaning(root, "ConceptNameCodeSequence")
    if title:
        out.lines.append(title.upper())
    _walk(root.get("ContentSequence") or [], out, 0)
    return out


def _walk(items: Any, out: SrText, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError("SR content tree deeper than 32 levels")
    for item in items:
        vt = str(item.get("ValueType", "")).upper()
        concept = _meaning(item, "ConceptNameCodeSequence")
        if vt == "CONTAINER":
            line = f"\n{concept}:" if concept else ""
        elif concept.lower() in _NOISE:
            line = ""
        else:
            line = _content_line(item, vt, concept, out)
        if line.strip():
            out.lines.append(line)
            if vt in ("TEXT", "CODE", "NUM"):  # a title, heading, observer or date says nothing found
                out.findings += 1
        if "ContentSequence" in item:
            _walk(item.ContentSequence, out, depth + 1)


def _content_line(item: Any, vt: str, concept: str, out: SrText) -> str:
    """The text line of one content item by its value type; people and dates noted in `out`."""
    if vt == "TEXT":
        text = str(item.get("TextValue", "")).strip()
        if "observer name" in concept.lower() or "person name" in concept.lower():
            out.people.append(person(text.replace(" ", "^", 1) if "^" not in text else text))
        return f"{concept}: {text}" if concept and "\n" not in text and len(text) < 80 else text
    if vt == "CODE":
        value = _meaning(item, "ConceptCodeSequence")
        return f"{concept}: {value}" if value else ""
    if vt == "NUM":
        mv = (item.get("MeasuredValueSequence") or [None])[0]
        if mv is not None and "NumericValue" in mv:
            unit = _meaning(mv, "MeasurementUnitsCodeSequence")
            return f"{concept}: {mv.NumericValue} {unit}".rstrip()
        return ""
    if vt == "PNAME":
        if not item.get("PersonName"):
            return ""
        p = person(item.PersonName)
        out.people.append(p)
        return f"{concept}: {' '.join(x for x in (p.given, p.family) if x)}"
    if vt in ("DATE", "DATETIME"):
        value = str(item.get("Date") or item.get("DateTime") or "")
        if value:
            out.dates.append(value[:8])
            return f"{concept}: {value}"
    return ""
