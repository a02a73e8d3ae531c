"""A name found once is a name everywhere in the same text: the context that exposed it
("Dr. Samoylova", "Valida M. Ibragimov") is often missing where it is used again ("Valida
said", "samoylova's note"). Only words outside the English and clinical vocabularies travel,
so one false alarm on an ordinary word does not spread through the note."""
from __future__ import annotations

import re

from ..domain import Span
from . import vocab
from .cues import STOP

_WORD = re.compile(r"[^\W\d_][\w'\-]*")
_NAMEY = ("NAME", "PATIENT")


def propagate_names(text: str, spans: list[Span]) -> list[Span]:
    """`spans` plus every other whole-word occurrence of a name word (merged later)."""
    common = vocab.common()
    medical = vocab.medical()  # an eponym or a brand ("Foley") called a name once must not spread
    names: dict[str, str] = {}
    for s in spans:
        if s.label not in _NAMEY:
            continue
        for m in _WORD.finditer(text, s.start, s.end):
            w = _core(m.group())
            if len(w) >= 3 and w not in common and w not in STOP and w not in medical:
                names.setdefault(w, s.label)
    if not names:
        return spans
    out = list(spans)
    for m in _WORD.finditer(text):
        label = names.get(_core(m.group()))
        if label:  # an occurrence already inside a span merges away
            out.append(Span(m.start(), m.end(), label))
    return out


def _core(word: str) -> str:
    w = word.lower()
    return w[:-2] if w.endswith("'s") else w.strip("'-")
