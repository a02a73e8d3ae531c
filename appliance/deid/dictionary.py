"""Dictionary and context recognisers: names and places that no header declares.

A first cut: context cues only (titles and phrases that introduce a person). The
clinical allow-list and dictionary matching extend this module."""
from __future__ import annotations

import re

from ..domain import Span

_TITLE = re.compile(
    r"\b(?:Dr|Doctor|Mr|Mrs|Ms|Miss|Prof|Nurse|RN|NP|PA)\.?\s+((?:[A-Z][A-Za-z'\-]+|[A-Z]\.)(?:\s+[A-Z][A-Za-z'\-]+){0,2})")


def dictionary_spans(text: str) -> list[Span]:
    out = []
    for m in _TITLE.finditer(text):
        out.append(Span(m.start(1), m.end(1), "NAME"))
    return out
