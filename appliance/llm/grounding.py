"""Grounding beyond numbers: every figure with its unit, every side and every affirmed or
negated finding a summary states is checked against the report it was written from. A 1.4 cm
node written as 1.4 mm, left written for right, "no effusion" for "small effusion": each is a
flag, stored with the summary, streamed to the client and counted."""
from __future__ import annotations

from dataclasses import dataclass

from .findings import MEASURE, read
from .verify import normalise, unsupported_numbers


@dataclass(frozen=True)
class Flag:
    kind: str  # "number", "unit", "side", "negation", "finding"
    text: str  # what the summary says
    reason: str  # why it is flagged, for the reader

    def render(self) -> str:
        return f"{self.kind}: \"{self.text}\" - {self.reason}"


def _measures(text: str) -> set[tuple[str, str]]:
    return {(normalise(m.group(1)), m.group(2).lower()) for m in MEASURE.finditer(text)}


def check(summary: str, report: str) -> list[Flag]:
    flags: list[Flag] = []
    for raw in unsupported_numbers(summary, report):
        flags.append(Flag("number", raw, "not in the report"))
    source_measures = _measures(report)
    source_numbers = {n for n, _u in source_measures}
    for m in MEASURE.finditer(summary):
        value, unit = normalise(m.group(1)), m.group(2).lower()
        if value in source_numbers and (value, unit) not in source_measures:
            units = sorted({u for n, u in source_measures if n == value})
            flags.append(Flag("unit", m.group(0), f"the report gives {value} in {', '.join(units)}"))
    src = read(report)
    said = read(summary)
    src_aff = {f.observation for f in src if f.affirmed}
    src_neg = {f.observation for f in src if not f.affirmed}
    for f in said:
        phrase = summary[f.start:f.end]
        if f.affirmed and f.observation not in src_aff:
            why = "the report says there is none" if f.observation in src_neg else "not in the report"
            flags.append(Flag("negation" if f.observation in src_neg else "finding", phrase, why))
        elif not f.affirmed and f.observation in src_aff and f.observation not in src_neg:
            flags.append(Flag("negation", phrase, f"the report describes {f.observation}"))
        if f.affirmed and f.side:
            sides = {g.side for g in src if g.observation == f.observation and g.affirmed and g.side}
            if sides and f.side not in sides and not (f.side != "bilateral" and "bilateral" in sides):
                flags.append(Flag("side", phrase, f"the report gives {' / '.join(sorted(sides))} for "
                                                  f"{f.observation}"))
    out: dict[tuple[str, str], Flag] = {}
    for fl in flags:
        out.setdefault((fl.kind, fl.text), fl)
    return list(out.values())
