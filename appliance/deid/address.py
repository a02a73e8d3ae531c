"""Spans that run on past what a pattern sees. An address runs on after its street
("12 Rua Igreja 25, Apt. 236, Ribeira, Portugal 30971"): once a street is found, the rest of
the line's capitalised words and numbers join it, and so do place names typed in lower case
("... suite 112 calgary alberta"). A date runs on over its time of day."""
from __future__ import annotations

import re

from ..domain import Span
from . import vocab
from .cues import STOP

# Address lines continue over separators, line breaks included (a multi-line postal address),
# through capitalised words, numbers and the particles of foreign street names; "apt. 999"
# continues over its dot.
_NEXT = re.compile(r"[ \t,>|?/\-\n()]{1,8}(?:[A-ZÀ-ŽŁΑ-Ω∆][\w'.\-]*|\d[\w\-]*|"
                   r"(?:de|da|do|del|la|le|van|von|di|al|el|nan|apt|suite)\b\.?)|\.[ \t]?\d[\w\-]*")
_PREV = re.compile(r"(\d[\d\-]*)[ \t,>\n]{1,4}$")  # the house number or postcode before the street
# "the corner of Maple and Main Street": a street name joined to the street found after it
_AND_BEFORE = re.compile(r"\b[A-ZÀ-Ž][\w'\-]+ and $")

_TIME_AFTER = re.compile(r"(?:[ T]|, )\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]\.?m\.?)?(?![\d:])", re.IGNORECASE)

# In prose an address may be typed in lower case; a line break or comma still continues it.
_NEXT_LOWER = re.compile(r"[ \t]*[,\n][ \t,\n]{0,6}(?:[^\W\d_][\w'.\-]*|\d[\w\-]*)(?:[ \t][^\W\d_][\w'.\-]*){0,3}")
_WORDS_AHEAD = re.compile(r"[ \t,]{1,3}((?:[^\W\d_][\w'\-]*)(?:[ \t]+[^\W\d_][\w'\-]*){0,3})")


def _place_ahead(text: str, pos: int) -> int | None:
    """End of a country, city or region named right after `pos`, else None."""
    m = _WORDS_AHEAD.match(text, pos)
    if m is None:
        return None
    places = vocab.postal_places()
    words = list(re.finditer(r"[^\W\d_][\w'\-]*", m.group(1)))
    for n in range(len(words), 0, -1):
        if tuple(w.group().lower() for w in words[:n]) in places:
            return m.start(1) + words[n - 1].end()
    return None


def extend_addresses(text: str, spans: list[Span], prose: bool = False) -> list[Span]:
    """Also: a time of day written right after a date belongs to that date ("2000-04-16 11:34")."""
    out = []
    for s in spans:
        if s.label == "DATE":
            m = _TIME_AFTER.match(text, s.end)
            out.append(Span(s.start, m.end(), "DATE") if m else s)
            continue
        if s.label != "ADDRESS":
            out.append(s)
            continue
        start, end = s.start, s.end
        limit = min(len(text), start + 240)
        while end < limit:
            m = _NEXT.match(text, end) or (_NEXT_LOWER.match(text, end) if prose else None)
            if m is not None:
                end = m.end()
                continue
            place_end = _place_ahead(text, end)
            if place_end is None:
                break
            end = place_end
        # "010 63 Avenue du Golf": a house number and a postcode before the street
        for _ in range(2):
            prev = _PREV.search(text, max(0, start - 12), start)
            if prev is None:
                break
            start = prev.start(1)
        if text[start].isalpha():
            before = _AND_BEFORE.search(text, max(0, start - 30), start)
            if before is not None:
                start = before.start()
        out.append(Span(start, _clause_end(text, start, end), "ADDRESS"))
    return out


# An address is short and shaped like one: a word that begins a clause or a phrase of prose
# ("with wife", "since Monday", "pt is alert") ends it, whichever recogniser ran it on. Words
# of place phrases ("at", "of", "de la", "on") do not.
_CLAUSE_WORDS = (STOP | frozenset("""alone since who which because after before until while pt patient reports
reported denies presents presented complains went states stated""".split())) - frozenset(
    "at in of on by to the a de da do del la le van von di al el".split())
_ADDRESS_WORD = re.compile(r"[^\W\d_][\w'\-]*")


def _clause_end(text: str, start: int, end: int) -> int:
    for m in _ADDRESS_WORD.finditer(text, start, end):
        w = m.group().lower()
        if m.start() > start and w in _CLAUSE_WORDS and not m.group()[0].isupper():
            if w in ("and", "or") and re.search(r"\d|\b[A-Z]", text[m.end():end]):
                continue  # "the corner of Maple and Main Street", "... and ul. Miła 53"
            return start + len(text[start:m.start()].rstrip(" \t\n,;:-(/"))
    return end
