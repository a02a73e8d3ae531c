"""An address runs on after its street: "12 Rua Igreja 25, Apt. 236, Ribeira, Portugal 30971".
Once a street is found, the rest of the line's capitalised words and numbers join it."""
from __future__ import annotations

import re

from ..domain import Span

_NEXT = re.compile(r"[ \t,>|?/\-]{1,6}(?:[A-ZÀ-ŽŁ][\w'.\-]*|\d[\w\-]*|(?:de|da|do|del|la|le|van|von|di|al|el|nan)\b)")
_PREV = re.compile(r"(\d[\d\-]*)[ \t,]{1,3}$")


def extend_addresses(text: str, spans: list[Span]) -> list[Span]:
    out = []
    for s in spans:
        if s.label != "ADDRESS":
            out.append(s)
            continue
        start, end = s.start, s.end
        limit = min(len(text), start + 200)
        while end < limit:
            m = _NEXT.match(text, end)
            if m is None:
                break
            end = m.end()
        prev = _PREV.search(text, max(0, start - 12), start)
        if prev is not None:
            start = prev.start(1)
        out.append(Span(start, end, "ADDRESS"))
    return out
