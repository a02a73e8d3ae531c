"""The leak gate: before text reaches the model and after it answers, look for every
identifier the message declared for this patient; redact and count hits."""
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


class StreamingGate:
    """Gates a token stream: text is released only once it is `holdback` characters
    behind the newest token, so an identifier split across tokens is caught before
    any of it leaves."""

    def __init__(self, known: KnownIdentifiers, holdback: int = 48) -> None:
        self._matcher = KnownMatcher(known)
        self._known = known
        self._raw = ""
        self._sent = 0
        self._holdback = holdback
        self.hits = 0

    def feed(self, piece: str) -> str:
        self._raw += piece
        gated = gate(self._raw, self._known, self._matcher).text
        safe_end = len(gated) - self._holdback
        cut = gated.rfind(" ", self._sent, max(safe_end, self._sent))
        if cut <= self._sent:
            return ""
        out = gated[self._sent:cut]
        self._sent = cut
        return out

    def finish(self) -> tuple[str, str]:
        """(the rest of the stream, the whole gated text)."""
        result = gate(self._raw, self._known, self._matcher)
        self.hits = result.hits
        rest = result.text[self._sent:]
        self._sent = len(result.text)
        return rest, result.text
