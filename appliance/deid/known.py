"""Find identifiers the message declared (names, numbers, dates, addresses, phones) in the
text, in any case and order, as initials, and with one-letter misspellings of longer names."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from ..domain import KnownIdentifiers, PersonName, Span

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
    if len(word) < 4 or not idx.fuzzy_parts:
        return None
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


def _name_spans(text: str, idx: _NameIndex) -> list[Span]:
    spans: list[Span] = []
    words = list(_WORD.finditer(text))
    for i, m in enumerate(words):
        w = m.group().lower()
        label = idx.exact.get(w) or _fuzzy_label(w, idx)
        if label is None:
            continue
        spans.append(Span(m.start(), m.end(), label))
        # An initial right before a family name ("J. Smith", "J Smith") is part of the name.
        if i > 0 and w in idx.family:
            prev = words[i - 1]
            gap = text[prev.end():m.start()]
            if len(prev.group()) == 1 and gap in (". ", " ", ".", ". "):
                spans.append(Span(prev.start(), prev.end() + (1 if gap.startswith(".") else 0), label))
    return spans


def _digits_pattern(value: str) -> re.Pattern[str] | None:
    digits = re.sub(r"\D", "", value)
    if len(digits) < 4:
        return None
    # The same digits with any of the usual separators between them.
    return re.compile(r"(?<![0-9])" + r"[\s().\-/]*".join(digits) + r"(?![0-9])")


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
            p = _digits_pattern(v) if re.fullmatch(r"[\d\s().\-/]+", v) else _literal_pattern(v)
            if p:
                pats.append((p, "MRN"))
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
