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
    titled: dict[str, str] = {}  # medical-list words a title made a person's name: "Dr. Lindqvist"
    for s in spans:
        if s.label not in _NAMEY:
            continue
        for m in _WORD.finditer(text, s.start, s.end):
            w = _core(m.group())
            if len(w) < 3 or w in common or w in STOP:
                continue
            if w not in medical:
                names.setdefault(w, s.label)
            elif _TITLE_BEFORE.search(text, max(0, m.start() - 8), m.start()) and m.group()[:1].isupper():
                titled.setdefault(w, s.label)
    if not names and not titled:
        return spans
    out = list(spans)
    for m in _WORD.finditer(text):
        w = _core(m.group())
        label = names.get(w) or (titled.get(w) if m.group()[:1].isupper() and not m.group().isupper() else None)
        if label:  # an occurrence already inside a span merges away
            out.append(Span(m.start(), m.end(), label))
    return out


# A title that names a person and nothing else (not "MR", the modality, nor "MS", the disease).
_TITLE_BEFORE = re.compile(r"\b(?:Dr|Doctor|Mrs|Miss|Prof)\.?\s+$")


def _core(word: str) -> str:
    w = word.lower()
    return w[:-2] if w.endswith("'s") else w.strip("'-")
