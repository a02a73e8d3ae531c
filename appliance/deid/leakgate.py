"""The leak gate: before text reaches the model and after it answers, look for every
identifier the message declared for this patient; redact and count hits. A summary reaches a
client line by line, each whole line through the gate (no identifier can be split across what
is released, so no stream-specific gate is needed)."""
from __future__ import annotations

from dataclasses import dataclass

from ..domain import KnownIdentifiers
from .known import KnownMatcher
from .spans import merge


@dataclass(frozen=True)
class GateResult:
    text: str
    hits: int  # how many spans were redacted; the text of a hit is never reported


def gate(text: str, known: KnownIdentifiers, matcher: KnownMatcher | None = None) -> GateResult:
    matcher = matcher or KnownMatcher(known)
    spans = merge(matcher.spans(text))
    if not spans:
        return GateResult(text, 0)
    out, pos = [], 0
    for s in spans:
        out.append(text[pos:s.start])
        out.append(f"[{s.label.lower()}]")
        pos = s.end
    out.append(text[pos:])
    return GateResult("".join(out), len(spans))
