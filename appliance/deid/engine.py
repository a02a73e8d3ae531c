"""The de-identification pipeline: recognisers -> merged spans -> surrogate text."""
from __future__ import annotations

import re

from ..domain import Deidentified, KnownIdentifiers, Span
from .address import extend_addresses
from .budget import check
from .dictionary import dictionary_spans
from .fields import field_names
from .given_names import given_name_spans
from .initial_names import initial_surnames
from .initials import join_initials
from .institutions import acronym_places
from .known import KnownMatcher
from .learned.tagger import Tagger, default_tagger
from .patterns import pattern_spans
from .propagate import propagate_names
from .spans import fill, join_institutions, merge
from .streets import street_spans
from .text import scrub
from .veto import veto
from . import vocab
from .surrogates import Surrogates


# A run of this many characters without whitespace is no word of a report (the longest URL or
# e-mail address a report quotes is shorter): an embedded base64 blob, a pasted token. It is
# removed whole, and the recognisers never see it: several of them backtrack on long runs
# (measured: 5,000 letters 0.9 s, 20,000 letters 6 s), and a removed run cannot leak anything.
MAX_RUN = 256
_LONG_RUN = re.compile(rf"\S{{{MAX_RUN + 1},}}")


def mask_long_runs(text: str) -> tuple[str, list[Span]]:
    """`text` with each overlong run blanked (offsets kept), and a BLOB span for each."""
    blobs = [Span(m.start(), m.end(), "BLOB") for m in _LONG_RUN.finditer(text)]
    if not blobs:
        return text, []
    parts, pos = [], 0
    for b in blobs:
        parts += [text[pos:b.start], " " * (b.end - b.start)]
        pos = b.end
    parts.append(text[pos:])
    return "".join(parts), blobs


def find_spans(text: str, known: KnownIdentifiers | None = None,
               matcher: KnownMatcher | None = None, tagger: Tagger | None = None) -> list[Span]:
    """All PHI spans in `text`, merged, in original offsets: the rules and the learned tagger,
    each a second opinion on the other (a word either one calls PHI is replaced)."""
    text, blobs = mask_long_runs(scrub(text)[0])
    check("the rules")
    hard, rules = _rules(text, known, matcher)
    check("the learned tagger")
    learned = (tagger or default_tagger()).spans(text, hard)
    check("merging")
    if not learned:
        found = merge(veto(text, rules) + blobs) if blobs else veto(text, rules)
    else:
        found = merge(propagate_names(text, veto(text, fill(rules, learned, text))) + blobs)
    return join_institutions(text, found)


def learned_spans(text: str, known: KnownIdentifiers | None = None, tagger: Tagger | None = None) -> list[Span]:
    """The patterns and the learned tagger without the dictionary and cue rules: measured on
    its own by cross-validation, since no rule of it was written by reading the corpus."""
    hard, _ = _rules(text, known, None)
    return fill(merge(hard), (tagger or default_tagger()).spans(text, hard), text)


def rule_spans(text: str, known: KnownIdentifiers | None = None,
               matcher: KnownMatcher | None = None) -> list[Span]:
    """The rule recognisers alone: patterns, declared identifiers, dictionaries and cues."""
    return _rules(text, known, matcher)[1]


def hard_spans(text: str, known: KnownIdentifiers | None = None,
               matcher: KnownMatcher | None = None) -> list[Span]:
    """What patterns and declared identifiers find: the tagger reads these as features."""
    spans = pattern_spans(text)
    spans.extend(street_spans(text))
    if matcher is None and known is not None:
        matcher = KnownMatcher(known)
    if matcher is not None:
        spans.extend(matcher.spans(text))
    dates = [s for s in spans if s.label == "DATE"]
    # "12 Mar 1948" also reads as a house number and a street: a date pattern is the better reading.
    return [s for s in spans if s.label != "ADDRESS" or not any(d.start <= s.start and s.end <= d.end for d in dates)]


def _rules(text: str, known: KnownIdentifiers | None,
           matcher: KnownMatcher | None) -> tuple[list[Span], list[Span]]:
    hard = hard_spans(text, known, matcher)
    check("the dictionaries")
    found, prose = dictionary_spans(text)
    found.extend(acronym_places(text))
    found.extend(initial_surnames(text))
    found.extend(field_names(text))
    found.extend(given_name_spans(text))
    check("addresses and names")
    spans = join_initials(text, merge(extend_addresses(text, merge(hard + found), prose)))
    return hard, merge(propagate_names(text, spans))


def deidentify(text: str, known: KnownIdentifiers, secret: bytes) -> Deidentified:
    text = scrub(text)[0]
    spans = find_spans(text, known)
    real = frozenset(w.lower() for n in (*known.patient_names, *known.other_names)
                     for field in (n.family, n.given, n.middle) for w in field.split())
    sur = Surrogates(secret, known.patient_key, avoid=real)
    out: list[str] = []
    originals: dict[str, set[str]] = {}
    positions: dict[str, str] = {}
    pos = 0
    length = 0
    for s in spans:
        original = text[s.start:s.end]
        replacement = sur.replace(s.label, original)
        out.append(text[pos:s.start])
        length += s.start - pos
        # Where each replacement sits in the de-identified text: the report is restored
        # exactly there and nowhere else.
        positions[position_key(length, length + len(replacement))] = original
        out.append(replacement)
        length += len(replacement)
        originals.setdefault(replacement, set()).add(original)
        pos = s.end
    out.append(text[pos:])
    # For text without positions (the model's summary), only surrogates that stand for one
    # original and are no ordinary word can be put back.
    common = vocab.common()
    words = {r: next(iter(o)) for r, o in originals.items() if len(o) == 1 and r.lower() not in common}
    return Deidentified(text="".join(out), spans=tuple(spans), surrogates={**words, **positions})


def surrogate_name(known: KnownIdentifiers, secret: bytes) -> str:
    """The patient's name as the de-identified text writes it ("FAMILY, GIVEN" of surrogates):
    the worklist shows who the report is about without showing who the patient is."""
    name = next((n for n in known.patient_names if not n.is_empty()), None)
    if name is None:
        return ""
    real = frozenset(w.lower() for n in (*known.patient_names, *known.other_names)
                     for field in (n.family, n.given, n.middle) for w in field.split())
    sur = Surrogates(secret, known.patient_key, avoid=real)
    return ", ".join(sur.name(part) for part in (name.family, name.given) if part.strip())


def position_key(start: int, end: int) -> str:
    """A surrogate-map key for the replacement at [start, end) of the de-identified text; the
    "@" cannot begin a surrogate, so the two kinds of entry never collide."""
    return f"@{start}:{end}"
