"""Span arithmetic: candidates from many recognisers -> one non-overlapping set."""
from __future__ import annotations

from ..domain import Span

# When two recognisers claim overlapping text, the more specific label wins the merged span.
_PRIORITY = {"PATIENT": 9, "ADDRESS": 8.5, "NAME": 8, "SSN": 8, "MRN": 8, "ID": 7, "EMAIL": 7, "URL": 7, "IP": 7,
             "PHONE": 6, "DATE": 6, "AGE": 6, "ZIP": 5, "LOCATION": 4,
             "INSTITUTION": 4}


def merge(spans: list[Span]) -> list[Span]:
    """Union overlapping or touching-by-overlap spans; the merged span keeps the top label."""
    if not spans:
        return []
    ordered = sorted(spans, key=lambda s: (s.start, -s.end))
    out: list[Span] = [ordered[0]]
    for s in ordered[1:]:
        last = out[-1]
        if s.start < last.end:
            label = last.label if _PRIORITY.get(last.label, 0) >= _PRIORITY.get(s.label, 0) else s.label
            out[-1] = Span(last.start, max(last.end, s.end), label)
        else:
            out.append(s)
    return out
