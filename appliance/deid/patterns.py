"""Pattern recognisers for identifiers no header declares. Each is (label, regex); the
regexes are linear-time in practice (no nested quantifiers over the same characters)."""
from __future__ import annotations

import re

from ..domain import Span

_MON = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
        r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?:(?:19|20)\d\d|'\d\d)"

DATE_PATTERNS = [
    # 7/22/1992, 07-22-92, 7/22, 22.07.1992
    rf"(?<![\d/.\-])(?:0?[1-9]|1[0-2])[/\-](?:[12]\d|3[01]|0?[1-9])(?:[/\-](?:(?:19|20)?\d\d))?(?![\d/\-]|\.\d)",
    rf"(?<![\d/.\-])(?:[12]\d|3[01]|0?[1-9])\.(?:0?[1-9]|1[0-2])\.(?:19|20)?\d\d(?![\d.])",
    # 1992-07-22, 1992/07/22, 19920722
    r"(?<!\d)(?:19|20)\d\d[-/](?:0?[1-9]|1[0-2])[-/](?:[12]\d|3[01]|0?[1-9])(?!\d)",
    r"(?<!\d)(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)",
    # July 22nd, 1992 / Jul 22 / July of 1992 / July '92
    rf"\b{_MON}\.?\s+{_DAY}\b(?:,?\s+{_YEAR}\b)?",
    rf"\b{_MON}\.?,?\s+(?:of\s+)?{_YEAR}",
    # 22 July 1992 / 22-JUL-1992 / 22nd of July
    rf"\b{_DAY}(?:\s+of)?[\s\-]+{_MON}\b\.?(?:[\s\-,]+{_YEAR}\b)?",
    # '92 on its own
    r"(?<![\w'])'\d\d\b",
]

PATTERNS: list[tuple[str, str]] = [
    ("EMAIL", r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+"),
    ("URL", r"\b(?:https?://|ftp://|www\.)[^\s<>\"']+"),
    ("IP", r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])"),
    ("IP", r"\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b"),
    ("SSN", r"(?<!\d)\d{3}[- ]\d{2}[- ]\d{4}(?!\d)"),
    ("PHONE", r"(?<![\d\-])(?:\+?1[\s.\-]?)?\(?\d{3}\)?[\s.\-]?\d{3}[\s.\-]\d{4}(?:\s*(?:x|ext\.?)\s*\d{1,5})?(?!\d)"),
    ("PHONE", r"(?<![\d\-./])\(\d{3}\)\s*\d{3}\d{4}(?!\d)"),
    ("PHONE", r"(?<![\d\-./:])\d{3}-\d{4}(?![\d\-])"),
    ("ID", r"(?<![\w\-])(?:\d[\s\-]?){13,19}(?![\w\-])"),  # card and account numbers
    ("ID", r"(?i)\b(?:mrn|mr#|acct|account|med(?:ical)?\s+rec(?:ord)?|unit\s*(?:no|number|#)|"
           r"licen[cs]e|lic|dea|npi|ssn|social\s+security|policy|member\s*id|id)\s*(?:no\.?|number|#)?"
           r"\s*[:#]?\s*[A-Z0-9][A-Z0-9\-]{3,}\b"),
    ("ID", r"(?<![\w\-])[A-Z]{1,3}\d{5,}[A-Z0-9]*(?![\w\-])"),
    ("ID", r"(?<![\w\-.])\d{7,}(?![\w\-]|\.\d)"),
    ("AGE", r"(?i)\b(?:9\d|1[0-1]\d)(?:\s*|-)(?:y/?o\b|yo\b|yrs?\b|years?(?:[\s\-]old)?\b|year-old|-year)"),
    ("AGE", r"(?i)\b(?:aged?|age of)\s+(?:9\d|1[0-1]\d)\b"),
    ("ZIP", r"(?<=[A-Z]{2}\s)\d{5}(?:-\d{4})?\b"),
    ("ZIP", r"(?i)(?<=zip\s)\d{5}(?:-\d{4})?\b|(?<=zip:\s)\d{5}(?:-\d{4})?\b"),
    ("ADDRESS", r"(?i)\b\d{1,6}\s+(?:[NSEW]\.?\s+)?(?:[A-Z][A-Za-z]+\s+){1,3}(?:street|st|avenue|ave|road|rd|"
                r"boulevard|blvd|drive|dr|lane|ln|court|ct|way|place|pl|terrace|ter|parkway|pkwy|circle|"
                r"cir|highway|hwy)\b\.?(?:\s*(?:apt|suite|ste|unit|#)\.?\s*[\w\-]+)?"),
    ("ADDRESS", r"(?i)\b(?:p\.?\s?o\.?\s+box)\s+\d+"),
] + [("DATE", p) for p in DATE_PATTERNS]

_COMPILED = [(label, re.compile(p, re.IGNORECASE if label in ("DATE", "ADDRESS", "URL") else 0))
             for label, p in PATTERNS]


def pattern_spans(text: str) -> list[Span]:
    out: list[Span] = []
    for label, rx in _COMPILED:
        out.extend(Span(m.start(), m.end(), label) for m in rx.finditer(text))
    return out
