"""Names in labelled header fields ("Patient: NGATA, RAWIRI | MRN ...", "Name: Adebayo,
Olumide", "Referring physician: Okafor"): the label, not a dictionary, says the value is a
name, so a name in no census list (most of the world's names) is found all the same.

The value is what follows the label on its line up to a field separator (a bar, a tab, two
spaces, a semicolon, another label's colon, a digit); it must be shaped like a name: one to
four capitalised or all-capitals words, initials, hyphens and apostrophes, or "FAMILY, GIVEN".
"Patient: alert and oriented" or "Patient: Tolerated procedure well" are no names by shape or
by vocabulary (a run of ordinary words without a comma is not taken after the bare word
"patient")."""
from __future__ import annotations

import re

from ..domain import Span
from . import vocab

# Labels whose value is a person's name. The bare "patient"/"pt" label also heads sentences
# ("Patient: tolerated the procedure"), so it asks for more evidence (see `_take`).
_STRONG = (r"(?:patient|pt|full|legal|family|given|first|last|maiden)'?s?\s+name|name|nok|next\s+of\s+kin|"
           r"(?:referring|ordering|attending|admitting|consulting|primary|treating|reading)\s+(?:physician|doctor|"
           r"clinician|provider|consultant|radiologist|surgeon|md|dr)|radiologist|pathologist|cardiologist|attending|"
           r"physician|surgeon|provider|consultant|resident|fellow|technologist|sonographer|interpreting\s+physician|"
           r"signed(?:\s+electronically)?\s+by|dictated\s+by|transcribed\s+by|read\s+by|reported\s+by|"
           r"verified\s+by|authenticated\s+by|performed\s+by|guardian|emergency\s+contact|contact\s+person|"
           r"mother|father|spouse|pcp|gp")
_WEAK = r"patient|pt"
# Lookbehinds, not "\s{2,}[ \t]*": a run of blanks must not be rescanned from every position in it
# (quadratic on a page of spaces).
_LABEL = re.compile(rf"(?im)(?:^|(?<=[|;\t])|(?<=[|;\t] )|(?<=\s\s))(?P<label>{_STRONG}|{_WEAK})[ \t]?[:#][ \t]?"
                    r"(?P<value>[^\n|;\t]*)")
_WORD = r"(?:[A-Z]\.|[A-Z][A-Za-z'’\-]*)"
_VALUE = re.compile(rf"(?:(?:Dr|DR|Mr|MR|Mrs|MRS|Ms|MS|Prof)\.?\s+)?(?P<core>{_WORD}(?:,?[ ]{_WORD}){{0,3}}?)"
                    rf"(?:,?[ ]?(?:MD|DO|RN|NP|PA|MBBS|FRCR|PhD)\b|[ ,]*$)")


def field_names(text: str) -> list[Span]:
    out: list[Span] = []
    for m in _LABEL.finditer(text):
        value = m.group("value").lstrip(" \t")
        lead = len(m.group("value")) - len(value)
        cut = re.search(r"\s{2,}|\d|\b[A-Za-z][A-Za-z .]{0,20}:", value)
        value = value[:cut.start()] if cut else value
        v = _VALUE.match(value)
        if not v:
            continue
        core = v.group("core")
        words = re.findall(r"[A-Za-z][A-Za-z'’\-]*", core)
        if not _take(m.group("label").lower(), core, words):
            continue
        start = m.start("value") + lead + v.start("core")
        out.append(Span(start, start + len(core), "NAME"))
    return out


_TITLE_OR_CREDENTIAL = frozenset("dr mr mrs ms prof md do rn np pa mbbs frcr phd".split())


def _take(label: str, value: str, words: list[str]) -> bool:
    names = [w for w in words if w.lower().strip(".") not in _TITLE_OR_CREDENTIAL]
    if not names:
        return False
    common = vocab.common()
    ordinary = [w for w in names if w.lower() in common and w.lower() not in vocab.first_names()
                and w.lower() not in vocab.last_names()]
    if label.split()[0] not in ("patient", "pt") or " name" in label or label == "name":
        return len(ordinary) < len(names)  # at least one word that is no ordinary word
    # Bare "Patient:": "FAMILY, GIVEN" with no ordinary word, or words that are all unknown.
    return ("," in value and not ordinary) or all(w.lower() not in common for w in names)
