"""The de-identification pipeline: recognisers -> merged spans -> surrogate text."""
from __future__ import annotations

from ..domain import Deidentified, KnownIdentifiers, Span
from .address import extend_addresses
from .dictionary import dictionary_spans
from .initials import join_initials
from .known import KnownMatcher
from .patterns import pattern_spans
from .propagate import propagate_names
from .spans import merge
from .streets import street_spans
from .surrogates import Surrogates


def find_spans(text: str, known: KnownIdentifiers | None = None,
               matcher: KnownMatcher | None = None) -> list[Span]:
    """All PHI spans in `text`, merged, in original offsets."""
    spans = pattern_spans(text)
    spans.extend(street_spans(text))
    if matcher is None and known is not None:
        matcher = KnownMatcher(known)
    if matcher is not None:
        spans.extend(matcher.spans(text))
    found, prose = dictionary_spans(text)
    spans.extend(found)
    spans = join_initials(text, merge(extend_addresses(text, merge(spans), prose)))
    return merge(propagate_names(text, spans))


def deidentify(text: str, known: KnownIdentifiers, secret: bytes) -> Deidentified:
    spans = find_spans(text, known)
    real = frozenset(w.lower() for n in (*known.patient_names, *known.other_names)
                     for field in (n.family, n.given, n.middle) for w in field.split())
    sur = Surrogates(secret, known.patient_key, avoid=real)
    out: list[str] = []
    mapping: dict[str, str] = {}
    pos = 0
    for s in spans:
        original = text[s.start:s.end]
        replacement = sur.replace(s.label, original)
        out.append(text[pos:s.start])
        out.append(replacement)
        mapping.setdefault(replacement, original)
        pos = s.end
    out.append(text[pos:])
    return Deidentified(text="".join(out), spans=tuple(spans), surrogates=mapping)
