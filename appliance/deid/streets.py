"""Street lines that a plain regex cannot tell from clinical shorthand without looking the
words up: "42 Birchwood Ln" but not "3 episodes ST" (sinus tachycardia); "25615 Tawastintie 72
Apt. 004" and "2407 tawastintie 6, sé" but not "80 HR 88," or "given 2 Percocet 5,"."""
from __future__ import annotations

import re

from ..domain import Span
from . import vocab

_ABBREV_STREET = re.compile(r"\b\d{1,6}\s+((?:[NSEW]\.?\s+)?(?:[A-Za-z][A-Za-z]+\s+){1,3})(?:St|Ave|Rd|Dr|Ln|Ct|Pl|"
                            r"Blvd|Ter|Pkwy|Cir|Hwy|ST|AVE|RD|DR|LN|CT|PL|BLVD|TER|PKWY|CIR|HWY)\b\.?")

# Continental order with a house or postal number in front: "0547 Bygget 91", "233 Erzsébet
# tér 19.", "12521 Belgrád rkp. 18. Apt. 417", "947 trg revolucije 17 apt. 858". The street line
# must end there: a comma, a line break, a quoted-mail prefix, or an apartment.
_NUMBER_STREET_NUMBER = re.compile(
    r"\b\d{1,6}[ \t]+((?:[^\W\d_][\w'\-]*\.?[ \t]+){1,4})\d{1,5}[A-Za-z]?\b\.?"
    r"(?=[ \t]*(?:[,>?\n]|[ \t]{2}|$|(?i:apt|suite|unit|ste|flat)\b))")


def _title(word: str) -> bool:
    return word[0].isupper() and any(c.islower() for c in word[1:])


def _street_words(raw: list[str]) -> bool:
    """A street name has a Title-case word or an abbreviation with its dot ("Λ. Αλεξάνδρας"),
    or, typed in lower case, a word that is neither English nor clinical. Capitals, digits and
    shorthand are ventilator settings and doses ("700 X 10,", "5 peep pip's 28", "fio2 40")."""
    words = [w.rstrip(".") for w in raw]
    if any(c.isdigit() for w in words for c in w):
        return False
    if _title(words[0]) or (len(words[0]) <= 2 and words[0][0].isupper() and raw[0].endswith(".")):
        return not any(w.isupper() and len(w) > 1 for w in words) and not _is_dose(words)
    common = vocab.common()
    return (all(w.islower() and w.isalpha() for w in words)
            and any(len(w) >= 4 and w not in common for w in words))


def _is_dose(words: list[str]) -> bool:
    """"2 Percocet 5," and "1 Tylenol 650": a drug between two numbers is a dose."""
    clinical = vocab.clinical()
    return all(w.lower().rstrip(".") in clinical for w in words)


def street_spans(text: str) -> list[Span]:
    out = []
    for m in _ABBREV_STREET.finditer(text):
        raw = m.group(1).split()
        if all(r.rstrip(".").lower() in ("n", "s", "e", "w") or (r[0].isupper() and not r.isupper())
               for r in raw):
            out.append(Span(m.start(), m.end(), "ADDRESS"))
    for m in _NUMBER_STREET_NUMBER.finditer(text):
        if _street_words(m.group(1).split()):
            out.append(Span(m.start(), m.end(), "ADDRESS"))
    return out
