"""Words that look like names or places to a dictionary or to the tagger but are not: medical
eponyms used as such ("Babinski positive", "Murphy sign", "Glasgow coma scale"), and race or
ethnicity words. Only recognisers' guesses are vetoed, never a declared identifier: a patient
named Murphy is still found by the declared-identifier matcher (label PATIENT)."""
from __future__ import annotations

import re
from functools import lru_cache

from ..domain import Span
from . import vocab
from .cues import TITLES
from .drugs import is_drug_shaped

# The clinical word that follows an eponym and makes it one.
EPONYM_HEADS = frozenset("""sign signs test tests scale score scores reflex reflexes syndrome disease disease's
maneuver manoeuvre manoeuvres maneuvers catheter catheters tube tubes criteria classification stage staging
procedure operation repair fracture node nodes position positive negative equation formula law phenomenon
triad tetrad cell cells body bodies point line lines hernia ulcer palsy palsies block coma""".split())
def _named(text: str, m: re.Match[str]) -> bool:
    """A title, a given name or an initial right before the word makes it a person's name."""
    prev = re.search(r"([^\W\d_][\w']*)\.?\s+$", text[max(0, m.start() - 30):m.start()])
    if not prev:
        return False
    raw = prev.group(1)
    w = raw.lower()
    return w in TITLES or (w in vocab.first_names() and raw[:1].isupper() and not raw.isupper()) \
        or (len(w) == 1 and raw.isupper())


@lru_cache(maxsize=1)
def _regions() -> frozenset[str]:
    return frozenset(n.lower() for f in ("us_states.txt", "countries.txt", "regions.txt", "world_cities.txt")
                     for n in vocab.lines(f) if " " not in n)


# The clinical words that make the capitalised word before them an eponym, whatever the word
# ("Graves disease", "Stanford type A"); a declared patient of that name is still found.
_NAMING_HEADS = frozenset("""disease disease's syndrome sign criteria classification scale score grade type stage
reflex maneuver manoeuvre phenomenon triad palsy""".split())
_FINDING_WORDS = frozenset("positive negative pos neg + - equivocal upgoing downgoing bilateral".split())
_WORD = re.compile(r"[^\W\d_][\w'\-]*")
_SOFT = frozenset({"NAME", "LOCATION", "INSTITUTION"})


def veto(text: str, spans: list[Span]) -> list[Span]:
    eponyms = vocab.eponyms()
    allow = vocab.allow_terms()
    out = []
    for s in spans:
        if s.label in _SOFT:
            words = [m for m in _WORD.finditer(text, s.start, s.end)]
            if words and all(_not_identifying(text, m, s.label, eponyms, allow) for m in words):
                continue
        out.append(s)
    return out


def _not_identifying(text: str, m: re.Match[str], label: str, eponyms: frozenset[str],
                     allow: frozenset[str]) -> bool:
    raw = m.group()
    w = raw.lower()
    if _named(text, m):
        return False  # "Dr. Murphy", "Art White", "R. Glasgow": a person after all
    if label == "NAME" and 2 <= len(raw) <= 5 and sum(c.isupper() for c in raw) >= 2 and w in vocab.abbreviations() \
            and w not in vocab.last_names() and w not in vocab.first_names():
        return True  # "GCS 15", "QTc": a score, not a person (as a place, "to BMC", it may be a hospital)
    core = w[:-2] if w.endswith("'s") else w.rstrip("'s") if w.endswith("s'") else w
    if core in allow:
        return True
    if is_drug_shaped(core) and (core in vocab.medical() or core not in vocab.last_names()):
        return True  # "apixaban", "ticagrelor": a drug by its INN stem, no census surname
    nxt = _WORD.search(text, m.end(), min(len(text), m.end() + 40))
    if raw[:1].isupper() and nxt and nxt.group().lower() in _NAMING_HEADS \
            and text[m.end():nxt.start()].strip(" -,'") == "":
        return True  # "Graves disease", "Nottingham grade": an eponym by the word it names
    if core not in eponyms and core.rstrip("s") not in eponyms:
        return False
    # An eponym is one before its clinical head word ("Murphy sign", "Glasgow coma scale") or
    # after a finding word ("positive Babinski").
    nxt = _WORD.search(text, m.end(), min(len(text), m.end() + 40))
    if nxt and nxt.group().lower() in EPONYM_HEADS and text[m.end():nxt.start()].strip(" -,'") == "":
        return True
    before = text[max(0, m.start() - 12):m.start()].lower().split()
    if before and before[-1].strip(",:;") in _FINDING_WORDS:
        return True
    if core in vocab.places()[0] or core in _regions():
        return False  # "Maryland", "Seattle"
    # Alone, only an eponym that is no census name at all ("Homans", "Trendelenburg").
    return core not in vocab.last_names() and core not in vocab.first_names()
