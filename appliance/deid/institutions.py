"""Hospitals written as their initials where a note moves a patient or names a unit: "to BMC
cath lab", "from JH ED", "at UMMC ICU". The initials alone say nothing (BMC is also bone mineral
content); the movement word before and the unit word after make them a place."""
from __future__ import annotations

import re

from ..domain import Span
from . import vocab

_UNITS = r"(?:cath(?:eterization)?\s+lab|ed|er|ew|icu|ccu|micu|sicu|ctu|or|pacu|clinic|hosp(?:ital)?|rehab|" \
         r"campus|main|south|north|east|west|for|on|at|via|by)"
_ACRONYM = re.compile(r"(?i)\b(?:to|from|at|in|@|xfer(?:red)?\s+to|transferred\s+(?:to|from))\s+"
                      r"(?P<v>[A-Z]{2,5})\s+" + _UNITS + r"\b")


# "U of M", "Univ. of Iowa": a university by its abbreviated name. "UMMC", "BIDMC", "NWGH"
# after a place preposition: initials shaped like a medical center's or a general hospital's.
_UNIVERSITY = re.compile(r"\b(?:U|Univ\.?|University)\s+of\s+(?:[A-Z][a-z]+|[A-Z]{1,4})(?:\s+[A-Z][a-z]+)?\b")
_HOSPITAL_INITIALS = re.compile(r"(?i:\b(?:to|from|at|in|@|via)\s+)(?:the\s+)?(?P<v>[A-Z]{1,5}(?:MC|GH|MH|CH|HC))\b")


def acronym_places(text: str) -> list[Span]:
    out = [Span(m.start(), m.end(), "INSTITUTION") for m in _UNIVERSITY.finditer(text)]
    for m in _HOSPITAL_INITIALS.finditer(text):
        low = m.group("v").lower()
        if not any(low in words for words in (vocab.abbreviations(), vocab.english_extended(), vocab.medical())):
            out.append(Span(m.start("v"), m.end("v"), "INSTITUTION"))
    for m in _ACRONYM.finditer(text):
        raw = m.group("v")
        low = raw.lower()
        if not raw.isupper() or low in vocab.english() or low in vocab.clinical() and low not in vocab.abbreviations():
            continue
        if low in _UNIT_WORDS:
            continue
        out.append(Span(m.start("v"), m.end("v"), "LOCATION"))
    return out


_UNIT_WORDS = frozenset("ed er ew icu ccu micu sicu ctu or pacu cath lab ct mri ir ot pt".split())
