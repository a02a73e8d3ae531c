"""Laboratory results as the ingest layer writes them ("POTASSIUM: 5.9 mmol/L (ref 3.3-5.1) [H]"):
each result with its value, unit, reference range and abnormal flag. A lab summary lists the
abnormal ones exactly as reported; numbers are copied, never generated, so no model is asked."""
from __future__ import annotations

import re
from dataclasses import dataclass

_RESULT = re.compile(r"(?m)^(?P<test>[^:\n]{2,60}):\s+(?P<value>[<>]?-?\d+(?:\.\d+)?)\s*(?P<unit>[^\s(\[]*)"
                     r"(?:\s*\(ref\s+(?P<ref>[^)]*)\))?(?:\s*\[(?P<flag>[^\]]+)\])?\s*$")
_RANGE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*-\s*(-?\d+(?:\.\d+)?)\s*$")
_FLAG_WORDS = {"H": "high", "HH": "critically high", "L": "low", "LL": "critically low", "A": "abnormal",
               "AA": "critically abnormal", ">": "above the measurable range", "<": "below the measurable range"}


@dataclass(frozen=True)
class LabResult:
    test: str
    value: str
    unit: str
    reference: str
    flag: str  # as reported, or derived from the range ("H"/"L"), or ""
    start: int
    end: int

    @property
    def abnormal(self) -> bool:
        return bool(self.flag)

    def render(self) -> str:
        ref = f", ref {self.reference}" if self.reference else ""
        why = _FLAG_WORDS.get(self.flag.upper(), self.flag)
        return f"{self.test.strip().title()} {self.value}{(' ' + self.unit) if self.unit else ''} ({why}{ref})"


def results(text: str) -> list[LabResult]:
    out = []
    for m in _RESULT.finditer(text):
        flag = (m.group("flag") or "").strip()
        ref = (m.group("ref") or "").strip()
        value = m.group("value")
        if not flag and ref and (r := _RANGE.match(ref)) and value[0] not in "<>":
            v, lo, hi = float(value), float(r.group(1)), float(r.group(2))
            flag = "H" if v > hi else "L" if v < lo else ""
        out.append(LabResult(m.group("test").strip(), value, m.group("unit") or "", ref, flag, m.start(), m.end()))
    return out


def is_lab_report(text: str) -> bool:
    """Most of the lines are results with a value: a laboratory report, not prose."""
    found = results(text)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return len(found) >= 3 and len(found) >= 0.4 * len(lines)
