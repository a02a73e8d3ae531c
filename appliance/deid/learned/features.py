"""Token features for the learned tagger: what generalises to notes it was never trained on.

A word's own spelling is a feature only when it is an English or clinical word or a cue
("dr", "wife", "transferred"); any other word is seen only by its shape, case, affixes and
dictionary memberships. So the model cannot learn that one corpus's nurse "Smith" is a name;
it learns that a capitalised census surname after "per" and before "aware" is one."""
from __future__ import annotations

import re
from functools import lru_cache, cache

from ...domain import Span
from .. import vocab
from ..cues import CREDENTIALS, HOSPITAL_WORDS, INSTITUTION_WORDS, MOVERS, RELATIONS, STATES, STOP, TITLES

# The scorer's tokens are alphanumeric runs; punctuation is kept as its own token for context.
TOKEN = re.compile(r"[^\W_]+|[^\w\s]")
_CONTEXT = 2


@cache
def _lists() -> dict[str, frozenset[str]]:
    single, _multi = vocab.places()
    world = frozenset(n.lower() for n in vocab.lines("world_cities.txt") if " " not in n)
    countries = frozenset(n.lower() for n in vocab.lines("countries.txt") if " " not in n)
    states = frozenset(n.lower() for n in vocab.lines("us_states.txt") if " " not in n)
    return {"first": vocab.first_names(), "last": vocab.last_names(), "eng": vocab.english(),
            "ext": vocab.english_extended(), "clin": vocab.clinical(), "city": single, "world": world,
            "country": countries, "state": states | STATES, "eponym": vocab.eponyms(),
            "allow": vocab.allow_terms(), "med": vocab.medical(), "abbr": vocab.abbreviations()}


@cache
def _ranks() -> dict[str, str]:
    """Census lists are ordered by frequency: a top-1000 name is strong evidence, a rank-80,000
    surname (often also a word) is weak."""
    out: dict[str, str] = {}
    for kind in ("last_names", "first_names"):
        for i, w in enumerate(vocab.lines(f"{kind}.txt")):
            out.setdefault(w.lower(), f"{kind[0]}{0 if i < 1000 else 1 if i < 10000 else 2}")
    return out


def _rank(low: str) -> str:
    return _ranks().get(low, "")


@cache
def _cue_words() -> frozenset[str]:
    return TITLES | CREDENTIALS | RELATIONS | STOP | MOVERS | INSTITUTION_WORDS | HOSPITAL_WORDS


@lru_cache(maxsize=262144)
def _shape(raw: str) -> str:
    s = re.sub(r"[A-Z]", "X", raw)
    s = re.sub(r"[a-z]", "x", s)
    s = re.sub(r"[0-9]", "d", s)
    return re.sub(r"(.)\1{2,}", r"\1\1", s)  # "Xxxxxxx" and "Xxxx" share "Xxx"


@lru_cache(maxsize=262144)
def _word_features(raw: str) -> tuple[str, ...]:
    """Features of a word on its own, cached: most words repeat across notes."""
    low = raw.lower()
    lists = _lists()
    common = low in lists["eng"] or low in lists["clin"] or low in _cue_words()
    f = ["w=" + (low if common or not raw.isalpha() and not raw.isalnum() or raw.isdigit() and len(raw) <= 2
                 else "<unk>" if raw.isalpha() else "<alnum>"),
         "shape=" + _shape(raw), "len=" + str(min(len(raw), 8))]
    if raw.isalpha():
        f.append("suf3=" + low[-3:])
        f.append("pre2=" + low[:2])
        f.append("case=" + ("upper" if raw.isupper() else "title" if raw[0].isupper() else "lower"))
    for name, words in lists.items():
        if low in words:
            f.append("in=" + name)
    known = low in lists["eng"] or low in lists["clin"] or low in lists["med"] or low in lists["ext"]
    if raw.isalpha() and len(raw) > 1:
        f.append("in=" + ("known" if known else "unknown"))
        rank = _rank(low)
        if rank:
            f.append("rank=" + rank)
            if not known:
                f.append("in=nameonly")
    if low in _cue_words():
        f.append("cue")
    if raw.isdigit():
        f.append("num")
        if len(raw) == 4 and 1900 <= int(raw) <= 2099:
            f.append("yearlike")
    return tuple(f)


@lru_cache(maxsize=524288)
def _context_features(raw: str, offset: int) -> tuple[str, ...]:
    """What a neighbour contributes: its word (or shape class), dictionaries, case, cue-ness."""
    return tuple(f"{offset}:{feat}" for feat in _word_features(raw)
                 if feat.startswith(("w=", "in=", "case=", "cue")))


def tokens(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in TOKEN.finditer(text)]


def rule_labels(toks: list[tuple[int, int]], spans: list[Span]) -> list[str]:
    """The rule recognisers' label covering each token, or "-"."""
    out = ["-"] * len(toks)
    j = 0
    ordered = sorted(spans, key=lambda s: s.start)
    for i, (a, b) in enumerate(toks):
        while j < len(ordered) and ordered[j].end <= a:
            j += 1
        if j < len(ordered) and ordered[j].start < b:
            out[i] = ordered[j].label
    return out


def caps_document(text: str) -> bool:
    """Mostly capitals: a note typed in ALL CAPS, where case says nothing about names."""
    return sum(map(str.isupper, text)) > 0.7 * max(sum(map(str.isalpha, text)), 1)


def featurize(text: str, toks: list[tuple[int, int]], rules: list[str],
              caps_doc: bool | None = None) -> list[list[str]]:
    if caps_doc is None:
        caps_doc = caps_document(text)
    base = [_word_features(text[a:b]) for a, b in toks]
    gaps = ["nl" if "\n" in text[toks[i - 1][1]:a] else "sp" if toks[i - 1][1] < a else "tight" if i else "bos"
            for i, (a, _b) in enumerate(toks)]
    n = len(toks)
    out: list[list[str]] = []
    for i in range(n):
        f = ["bias", "capsdoc" if caps_doc else "mixeddoc", "gap=" + gaps[i], "rule=" + rules[i]]
        f.extend(base[i])
        for d in range(-_CONTEXT, _CONTEXT + 1):
            if d == 0:
                continue
            j = i + d
            if j < 0 or j >= n:
                f.append(f"{d}:pad")
                continue
            f.extend(_context_features(text[toks[j][0]:toks[j][1]], d))
            f.append(f"{d}:rule={rules[j]}")
        for d in (-3, 3):
            j = i + d
            if 0 <= j < n and base[j][0][2:] in _cue_words():
                f.append(f"{d}:{base[j][0]}")
        if i > 0:
            f.append("bigram=" + base[i - 1][0] + "|" + base[i][0])
        if i + 1 < n:
            f.append("bigram+=" + base[i][0] + "|" + base[i + 1][0])
        out.append(f)
    return out
