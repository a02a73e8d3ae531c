"""Find identifiers the message declared (names, numbers, dates, addresses, phones) in the
text, in any case and order, as initials, and with one-letter misspellings of longer names."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from ..domain import KnownIdentifiers, PersonName, Span
from . import vocab

_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['\-])*[^\W\d_]|[^\W\d_]")  # any script
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


@dataclass(frozen=True)
class _NameIndex:
    exact: dict[str, str]  # lower-case name part -> label
    fuzzy: dict[str, str]  # one-deletion neighbourhood of parts of 5+ letters -> label
    fuzzy_parts: dict[str, str]
    family: frozenset[str]


def _name_parts(name: PersonName) -> list[str]:
    parts = []
    for piece in (name.family, name.given, name.middle):
        for w in re.split(r"[\s\-]+", piece):
            w = w.strip(".,'").lower()
            if len(w) >= 2:
                parts.append(w)
    return parts


def _index(known: KnownIdentifiers) -> _NameIndex:
    exact: dict[str, str] = {}
    fuzzy: dict[str, str] = {}
    fuzzy_parts: dict[str, str] = {}
    family: set[str] = set()
    for names, label in ((known.other_names, "NAME"), (known.patient_names, "PATIENT")):
        for n in names:
            for w in re.split(r"[\s\-]+", n.family):
                if len(w.strip(".,'")) >= 2:
                    family.add(w.strip(".,'").lower())
            for part in _name_parts(n):
                exact[part] = label
                if len(part) >= 5:
                    fuzzy_parts[part] = label
                    for d in _deletions(part):
                        fuzzy.setdefault(d, label)
    return _NameIndex(exact, fuzzy, fuzzy_parts, frozenset(family))


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


def _initial(m: re.Match[str]) -> bool:
    return len(m.group()) == 1 and m.group().isupper()


_TITLES = frozenset("mr mrs ms miss dr pt patient mister madam".split())


def _name_spans(text: str, idx: _NameIndex) -> list[Span]:
    """Declared name parts in the text. A part that is also an ordinary word (a patient named
    White, Young or Masse) counts only where the text uses it as a name: next to another part
    of a declared name, after a title or an initial, or capitalised inside a mixed-case sentence."""
    words = list(_WORD.finditer(text))
    mixed = sum(map(str.islower, text)) > 0.3 * max(sum(map(str.isalpha, text)), 1)
    hits: list[tuple[int, str, bool]] = []  # (word index, label, needs context)
    for i, m in enumerate(words):
        w = m.group().lower()
        label = idx.exact.get(w)
        if label is not None:
            hits.append((i, label, _vocabulary_word(w)))
        elif (label := _fuzzy_label(w, idx)) is not None:
            hits.append((i, label, False))
    confirmed = {i for i, _l, needs in hits if not needs}
    spans: list[Span] = []
    for i, label, needs in hits:
        m = words[i]
        if needs and not _used_as_name(text, words, i, confirmed, mixed):
            continue
        spans.append(Span(m.start(), m.end(), label))
        # An initial right before a family name ("J. Smith", "J Smith") is part of the name.
        if i > 0 and m.group().lower() in idx.family:
            prev = words[i - 1]
            gap = text[prev.end():m.start()]
            if _initial(prev) and gap in (". ", " ", ".", ". "):
                spans.append(Span(prev.start(), prev.end() + (1 if gap.startswith(".") else 0), label))
    return spans


def _used_as_name(text: str, words: list[re.Match[str]], i: int, confirmed: set[int], mixed: bool) -> bool:
    def near(j: int) -> bool:
        if not 0 <= j < len(words):
            return False
        a, b = sorted((words[i], words[j]), key=lambda x: x.start())
        gap = text[a.end():b.start()]
        return len(gap) <= 3 and "\n" not in gap and all(c in " ,." for c in gap)

    for j in (i - 1, i + 1):
        if near(j) and (j in confirmed or words[j].group().lower() in _TITLES or (j == i - 1 and _initial(words[j]))):
            return True
    raw = words[i].group()
    after = text[words[i].end():words[i].end() + 2]
    if raw[0].isupper() and (after.startswith(":") or after.lower() == "'s"):
        return True  # "Lunge: ..." heads a line, "Young's" owns something
    if mixed and raw[0].isupper() and not raw.isupper():
        before = text[max(0, words[i].start() - 3):words[i].start()]
        return i > 0 and not any(c in before for c in ".!?:\n")  # not a capital that starts a sentence
    return False


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
