"""Given names that a dictionary rule does not take because they are also words ("Rob",
"Mark", "Will"): the context says "person" — a given name with an initial set off by commas
("the resident, Mark R., requiring"), or a given name right after a verb of contacting someone
("unable to reach Rob", "called Grace at home")."""
from __future__ import annotations

import re

from ..domain import Span
from . import vocab
from .cues import RELATIONS, STOP

# ", Mark R.," / "(Mark R.)" / "- Dana T. -": a given name and an initial between separators.
_GIVEN_INITIAL = re.compile(r"(?:(?<=[,(;:])|(?<=[,(;:] )|(?<= - "
    r"))(?P<g>[A-Z][a-z]{1,14})\s(?P<i>[A-Z])\.(?=\s*[,;)\-]|\s+(?:and|or)\b)")
# The verb that has a person as its object.
_CONTACT = re.compile(r"\b(?i:reach|reached|call|called|calling|phoned|phone|paged|page|told|tell|asked|ask|"
                      r"informed|notified|updated|update|contacted|contact|texted|emailed|"
                      r"spoke\s+(?:with|to)|speak\s+(?:with|to)|talked\s+(?:with|to)|met\s+with|per)\s+"
                      r"(?P<g>[A-Z][a-z]{1,14}|[A-Z]{2,15})\b(?![\-'’]?\w)")


def given_name_spans(text: str) -> list[Span]:
    first = vocab.first_names()
    out: list[Span] = []
    for m in _GIVEN_INITIAL.finditer(text):
        g = m.group("g").lower()
        if g in first or not (g in vocab.common() or g in vocab.medical()):
            out.append(Span(m.start("g"), m.end("i") + 1, "NAME"))
    for m in _CONTACT.finditer(text):
        raw = m.group("g")
        w = raw.lower()
        if raw.isupper() and w in vocab.english():
            continue  # "CALL MY HUSBAND", "PER SON": in capitals only a word that is no English word
        if w in first and w not in RELATIONS and w not in STOP and not _clinical(w):
            out.append(Span(m.start("g"), m.end("g"), "NAME"))
    return out


def _clinical(w: str) -> bool:
    """"called Cardiology", "paged Neuro", "per Ortho": a service, not a person; a census given
    name that is also a medical word ("Iris", "Sherry") still needs another cue."""
    return w in vocab.clinical() or w in vocab.abbreviations() or w in vocab.drugs()
