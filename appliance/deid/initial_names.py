"""A person written as an initial and a surname in capitals ("J. SMITH AWARE OF PLAN", "PER
K. OKAFOR"): the initial is the cue, so the surname needs no capitalised context, which an
ALL-CAPS note cannot give. Only census surnames that are no clinical term or abbreviation count,
and a side letter before an anatomical word is a side: "E. COLI", "S. AUREUS", "L. ARM" stay."""
from __future__ import annotations

import re

from ..domain import Span
from . import vocab

# The initial stands alone: after white space or an opening bracket, not the end of "U/O." or "A&O.".
_INITIAL_SURNAME = re.compile(r"(?:(?<=[\s(])|^)(?P<initial>[A-Z])\.\s?(?P<surname>[A-Z][A-Za-z'\-]{2,})\b")
# L., R., B. before an anatomical word are sides ("L. ARM", "R. LEG"), not initials.
_SIDES = frozenset("LRB")
_SOAP = frozenset("SOAP")


def initial_surnames(text: str) -> list[Span]:
    out = []
    for m in _INITIAL_SURNAME.finditer(text):
        w = m.group("surname").lower()
        if w not in vocab.last_names() or w in vocab.clinical() or w in vocab.abbreviations():
            continue
        if m.group("initial") in _SIDES and w in vocab.medical():
            continue
        line_start = not text[:m.start()].rsplit("\n", 1)[-1].strip()
        if (line_start and m.group("initial") in _SOAP) or text[:m.start()].rstrip().endswith("&"):
            continue  # "O. SEE CAREVUE" (a SOAP heading), "I & O. CHECK" (intake and output)
        out.append(Span(m.start(), m.end(), "NAME"))
    return out
