"""A name found in two pieces keeps what sits between and after them: "John A. Leiva",
"codey m ross", "Kevin Veitonen II". The initial alone is no evidence of a name (a grade, a
lead, a unit), but between a given name and a family name it is that person's middle name."""
from __future__ import annotations

import re

from ..domain import Span

_NAMEY = ("NAME", "PATIENT")
_MIDDLE = re.compile(r"[ \t]+[^\W\d_]\.?[ \t]+")
# With a capital initial the other half needs no dictionary: "Daniela C Capon", "Maja S Hermansen"
_AFTER = re.compile(r"[ \t]+[A-Z]\.?[ \t]+[A-Z][a-z][\w'\-]*")
_BEFORE = re.compile(r"\b[A-Z][a-z][\w'\-]*[ \t]+[A-Z]\.?[ \t]+$")
_SUFFIX = re.compile(r",?[ \t]+(?:Jr|Sr|II|III|IV)\b\.?")


def join_initials(text: str, spans: list[Span]) -> list[Span]:
    """`spans` merged and sorted; NAME + initial + NAME becomes one span."""
    out: list[Span] = []
    for s in spans:
        last = out[-1] if out else None
        if (last is not None and last.label in _NAMEY and s.label in _NAMEY
                and _MIDDLE.fullmatch(text, last.end, s.start)):
            out[-1] = Span(last.start, s.end, last.label)
        else:
            out.append(s)
    return [_widen(text, s) for s in out]


def _widen(text: str, s: Span) -> Span:
    after = _AFTER.match(text, s.end)
    if s.label == "LOCATION" and after is not None:
        s = Span(s.start, s.end, "NAME")  # "by Daniela C Capon": no place takes a middle initial
    if s.label not in _NAMEY:
        return s
    start, end = s.start, s.end
    if after is not None:
        end = after.end()
    before = _BEFORE.search(text, max(0, start - 40), start)
    if before is not None:
        start = before.start()
    suffix = _SUFFIX.match(text, end)
    if suffix is not None:
        end = suffix.end()
    return Span(start, end, s.label)
