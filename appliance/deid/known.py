"""Find identifiers the message declared (names, numbers, dates, addresses, phones) in the
text, in any case and order, as initials, and with one-letter misspellings of longer names."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from ..domain import KnownIdentifiers, PersonName, Span
from . import vocab
from .cues import RELATIONS, STOP
from .drugs import is_drug
from .text import MARKS as _MARKS

# A name typed with a combining accent ("Jose\u0301") is one word, and matches the same name
# written precomposed or without the accent.
_PIECE = re.compile(rf"[^\W\d_](?:[^\W\d_]|[{_MARKS}])*")
# Scripts written without spaces between words: a declared name is found as a substring.
_UNSPACED = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\u0e00-\u0e7f]")
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]


def fold(word: str) -> str:
    """A name part as matched: compatibility-decomposed, accents dropped, case folded."""
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c)).casefold()


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


@dataclass(frozen=True)
class _NameIndex:
    exact: dict[str, str]  # folded name part -> label
    fuzzy: dict[str, str]  # one-deletion neighbourhood of parts of 5+ letters -> label
    fuzzy_parts: dict[str, str]
    family: frozenset[str]
    unspaced: tuple[tuple[str, str], ...]  # (name in a script without spaces, label), longest first


def _split(piece: str) -> list[str]:
    return [fold(w) for w in _PIECE.findall(piece)]


def _name_parts(name: PersonName) -> list[str]:
    return [w for piece in (name.family, name.given, name.middle) for w in _split(piece) if len(w) >= 2]


def _unspaced_names(name: PersonName) -> list[str]:
    """"王小明" as written whole, either order, and each part of two characters or more."""
    fam, giv = unicodedata.normalize("NFC", name.family.strip()), unicodedata.normalize("NFC", name.given.strip())
    out = [fam + giv, giv + fam] + [p for p in (fam, giv) if len(p) >= 2]
    return [n for n in out if n and _UNSPACED.search(n)]


def _index(known: KnownIdentifiers) -> _NameIndex:
    exact: dict[str, str] = {}
    fuzzy: dict[str, str] = {}
    fuzzy_parts: dict[str, str] = {}
    family: set[str] = set()
    unspaced: dict[str, str] = {}
    for names, label in ((known.other_names, "NAME"), (known.patient_names, "PATIENT")):
        for n in names:
            family.update(w for w in _split(n.family) if len(w) >= 2)
            for whole in _unspaced_names(n):
                unspaced[whole] = label
            for part in _name_parts(n):
                exact[part] = label
                if len(part) >= 5:
                    fuzzy_parts[part] = label
                    for d in _deletions(part):
                        fuzzy.setdefault(d, label)
    ordered = tuple(sorted(unspaced.items(), key=lambda kv: -len(kv[0])))
    return _NameIndex(exact, fuzzy, fuzzy_parts, frozenset(family), ordered)


def _fuzzy_label(word: str, idx: _NameIndex) -> str | None:
    if len(word) < 4 or not idx.fuzzy_parts or _vocabulary_word(word):
        return None  # a real word is never a misspelt name: "lung" is not "Lunge"
    if word in idx.fuzzy_parts:
        return idx.fuzzy_parts[word]
    if word in idx.fuzzy:  # a letter missing from the text
        return idx.fuzzy[word]
    for d in _deletions(word):
        if d in idx.fuzzy_parts:  # an extra letter in the text
            return idx.fuzzy_parts[d]
        if d in idx.fuzzy and len(word) >= 5:  # a letter substituted
            return idx.fuzzy[d]
    return None


def _vocabulary_word(word: str) -> bool:
    w = word.lower()
    stem = w[:-1] if w.endswith("s") else w
    return any(x in vocab.common() or x in vocab.medical() for x in (w, stem))


def _protected(word: str) -> bool:
    """Clinical vocabulary (lung, mass, stone, white, young: OpenMedSpel's medical words, the
    drug list, the project's clinical terms) and function words (may, will): a declared name
    part that is one of these is a name only where the text uses it as one. Any other word
    ("john", "harry", "doe") is removed wherever it stands, in any case."""
    w = word.lower()
    stem = w[:-1] if w.endswith("s") else w
    return (w in STOP or any(x in vocab.medical() or x in vocab.clinical() or is_drug(x) for x in (w, stem)))


def _initial(raw: str) -> bool:
    return len(raw) == 1 and raw.isupper()


_TITLES = frozenset("mr mrs ms miss dr pt patient mister madam".split())
# Words after a name that only a person does: "STONE CALLED", "bill states".
_PERSON_AFTER = frozenset("""called calls calling states stated says said aware agrees agreed declines declined
denies denied refuses refused requests requested wishes wants wanted asked asks reports reported visited
visiting informed notified updated spoke speaks phoned""".split())
# Words before a name that only a person follows: "spoke with bill", "per Gray".
_PERSON_BEFORE = (("spoke", "with"), ("talked", "with"), ("talked", "to"), ("spoke", "to"), ("per",),
                  ("called",), ("told",), ("informed",), ("notified",), ("paged",), ("reach",), ("reached",),
                  ("asked",), ("visited", "by"), ("seen", "by"), ("accompanied", "by"))


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int
    raw: str
    key: str  # folded


def _pieces(text: str) -> list[_Piece]:
    """Letter runs (with their combining marks), split at apostrophes and hyphens, so that
    "Doe's", "O'Brien" and "Smith-Jones" show their parts; a possessive "s" is no part."""
    out: list[_Piece] = []
    for m in _PIECE.finditer(text):
        raw = m.group()
        if raw.lower() == "s" and m.start() > 0 and text[m.start() - 1] in "'\u2019":
            continue
        out.append(_Piece(m.start(), m.end(), raw, fold(raw)))
    return out


def _name_spans(text: str, idx: _NameIndex) -> list[Span]:
    """Declared name parts in the text, in any case. A part that is clinical vocabulary or a
    function word (a patient named White, Young, Stone or May) counts only where the text uses
    it as a name: next to another part of a declared name (across a comma or a line break),
    after a title or an initial, before or after words only a person goes with ("STONE CALLED",
    "spoke with bill"), as a possessive, or capitalised inside a mixed-case sentence."""
    words = _pieces(text)
    mixed = sum(map(str.islower, text)) > 0.3 * max(sum(map(str.isalpha, text)), 1)
    hits: list[tuple[int, str, bool]] = []  # (piece index, label, needs context)
    for i, p in enumerate(words):
        label = idx.exact.get(p.key)
        if label is not None:
            hits.append((i, label, _protected(p.key)))
        elif (label := _fuzzy_label(p.key, idx)) is not None:
            hits.append((i, label, False))
    confirmed = {i for i, _l, needs in hits if not needs}
    declared = {i for i, _l, _n in hits}
    spans: list[Span] = []
    for i, label, needs in hits:
        p = words[i]
        if needs and not _used_as_name(text, words, i, confirmed, declared, mixed):
            continue
        spans.append(Span(p.start, p.end, label))
        # An initial right before a family name ("J. Smith", "J Smith", "O'Brien") is part of the name.
        if i > 0 and p.key in idx.family:
            prev = words[i - 1]
            gap = text[prev.end:p.start]
            if _initial(prev.raw) and gap in (". ", " ", ".", "'", "\u2019"):
                spans.append(Span(prev.start, prev.end + (1 if gap.startswith(".") else 0), label))
    for whole, label in idx.unspaced:
        pos = text.find(whole)
        while pos >= 0:
            spans.append(Span(pos, pos + len(whole), label))
            pos = text.find(whole, pos + len(whole))
    return spans


def _adjacent(text: str, a: _Piece, b: _Piece) -> bool:
    """Two words of one name: at most a comma, a full stop, an apostrophe, a hyphen and spaces
    between them ("Smith-Jones", "Smith, J."), or a line break after a comma ("GRAY,\nBILL")."""
    gap = text[a.end:b.start]
    if "\n" in gap and not (gap.count("\n") == 1 and gap.lstrip(" \t").startswith(",")):
        return False
    return len(gap) <= 4 and all(c in " ,.\n\r\t-'\u2019" for c in gap)


def _used_as_name(text: str, words: list[_Piece], i: int, confirmed: set[int], declared: set[int],
                  mixed: bool) -> bool:
    p = words[i]
    for j in (i - 1, i + 1):
        if 0 <= j < len(words):
            a, b = (words[j], p) if j < i else (p, words[j])
            other_part = j in confirmed or (j in declared and words[j].key != p.key)
            if _adjacent(text, a, b) and (other_part or words[j].key in _TITLES
                                          or (j == i - 1 and _initial(words[j].raw))):
                return True
    if i + 1 < len(words) and words[i + 1].key in _PERSON_AFTER and text[p.end:words[i + 1].start].strip() in ("", ","):
        return True
    before = tuple(w.key for w in words[max(0, i - 2):i])
    if any(before[len(before) - len(cue):] == cue for cue in _PERSON_BEFORE if len(cue) <= len(before)):
        return True
    after = text[p.end:p.end + 2]
    if after.startswith(":"):
        return True  # "Lunge: ..." heads a line
    if after[:1] in "'\u2019" and after[1:2].lower() == "s":
        # "Doe's" owns something; an eponym's possessive names a sign ("Bell's palsy") unless a
        # relative follows ("Marsh's son").
        nxt = words[i + 1].key if i + 1 < len(words) else ""  # the possessive "s" is no piece
        if p.key not in _eponyms() or nxt in RELATIONS:
            return True
    if mixed and p.raw[0].isupper() and not p.raw.isupper():
        lead = text[max(0, p.start - 3):p.start]
        return i > 0 and not any(c in lead for c in ".!?:\n")  # not a capital that starts a sentence
    return False


@lru_cache(maxsize=1)
def _eponyms() -> frozenset[str]:
    return frozenset(w.lower() for w in vocab.eponyms())


def _digits_pattern(value: str) -> re.Pattern[str] | None:
    digits = re.sub(r"\D", "", value)
    if len(digits) < 4:
        return None
    # The same digits with any of the usual separators between them.
    return re.compile(r"(?<![0-9])" + r"[\s().\-/]*".join(digits) + r"(?![0-9])")


def _record_patterns(value: str) -> list[re.Pattern[str]]:
    """A record number as clinicians write it: whole, with or without its letter prefix or
    assigning authority, its digits split by spaces, dashes or dots ("MR7300119", "MR-7300119",
    "7300119", "730-0119")."""
    pats: list[re.Pattern[str]] = []
    value = value.split("^")[0].strip()
    for run in re.findall(r"\d+", value):
        if len(run) >= 4 and (p := _digits_pattern(run)):
            pats.append(p)
    letters = re.match(r"([A-Za-z]+)[\s\-]*(\d.*)$", value)
    if letters:
        flexible = r"[\s().\-/]*".join(re.escape(c) for c in re.sub(r"\W", "", letters.group(2)))
        pats.append(re.compile(r"(?<![A-Za-z0-9])" + re.escape(letters.group(1)) + r"[\s\-#:]*" + flexible
                               + r"(?![A-Za-z0-9])", re.IGNORECASE))
    if not pats and (p := _literal_pattern(value)):
        pats.append(p)
    return pats


def _literal_pattern(value: str) -> re.Pattern[str] | None:
    value = value.strip()
    if len(value) < 3:
        return None
    words = [re.escape(w) for w in re.split(r"[\s,.]+", value) if w]
    if not words:
        return None
    return re.compile(r"(?<![A-Za-z0-9])" + r"[\s,.]+".join(words) + r"(?![A-Za-z0-9])", re.IGNORECASE)


def _date_variants(value: str) -> list[str]:
    m = re.match(r"^(\d{4})(\d{2})(\d{2})", value)
    if not m:
        return []
    try:
        d = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return []
    mon = _MONTHS[d.month - 1]
    y2 = f"{d.year % 100:02d}"
    return [
        f"{d.month}/{d.day}/{d.year}", f"{d.month:02d}/{d.day:02d}/{d.year}", f"{d.month}/{d.day}/{y2}",
        f"{d.month:02d}/{d.day:02d}/{y2}", f"{d.year}-{d.month:02d}-{d.day:02d}", f"{d.year}{d.month:02d}{d.day:02d}",
        f"{d.day}-{mon[:3]}-{d.year}", f"{d.day:02d}-{mon[:3]}-{d.year}", f"{mon} {d.day}, {d.year}",
        f"{mon[:3]} {d.day}, {d.year}", f"{d.day} {mon} {d.year}", f"{d.month}-{d.day}-{d.year}",
        f"{d.day}.{d.month}.{d.year}", f"{d.day:02d}.{d.month:02d}.{d.year}",
    ]


class KnownMatcher:
    """Compiled once per patient; `spans(text)` is then cheap."""

    def __init__(self, known: KnownIdentifiers) -> None:
        self._names = _index(known)
        pats: list[tuple[re.Pattern[str], str]] = []
        for v in known.record_numbers:
            pats.extend((rp, "MRN") for rp in _record_patterns(v))
        for v in known.phones:
            p = _digits_pattern(v)
            if p:
                pats.append((p, "PHONE"))
        for v in known.addresses:
            p = _literal_pattern(v)
            if p:
                pats.append((p, "ADDRESS"))
        for v in known.postal_codes:
            p = _literal_pattern(v.split("-")[0])
            if p:
                pats.append((p, "ZIP"))
        for v in known.emails:
            p = _literal_pattern(v)
            if p:
                pats.append((p, "EMAIL"))
        for v in known.dates:
            for variant in dict.fromkeys(_date_variants(v) or [v]):
                p = _literal_pattern(variant)
                if p:
                    pats.append((p, "DATE"))
        self._patterns = pats

    def spans(self, text: str) -> list[Span]:
        out = _name_spans(text, self._names)
        for pat, label in self._patterns:
            out.extend(Span(m.start(), m.end(), label) for m in pat.finditer(text))
        return out
