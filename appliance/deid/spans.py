"""Span arithmetic: candidates from many recognisers -> one non-overlapping set."""
from __future__ import annotations

import re

from ..domain import Span

# When two recognisers claim overlapping text, the more specific label wins the merged span.
_PRIORITY = {"PATIENT": 9, "ADDRESS": 8.5, "NAME": 8, "SSN": 8, "MRN": 8, "ID": 7, "EMAIL": 7, "URL": 7, "IP": 7,
             "PHONE": 6, "DATE": 6, "AGE": 6, "ZIP": 5, "LOCATION": 4,
             "INSTITUTION": 4}


def merge(spans: list[Span]) -> list[Span]:
    """Union overlapping spans. The merged span takes the label of its longest part (a date
    "12-Mar-1948" stays a date although "Mar" alone looked like a name); equal lengths go to
    the more specific label."""
    if not spans:
        return []
    ordered = sorted(spans, key=lambda s: (s.start, -s.end))
    out: list[Span] = [ordered[0]]
    best: list[Span] = [ordered[0]]  # the part whose label the merged span carries
    for s in ordered[1:]:
        last = out[-1]
        if s.start < last.end:
            b = best[-1]
            if (s.end - s.start, _PRIORITY.get(s.label, 0)) > (b.end - b.start, _PRIORITY.get(b.label, 0)):
                best[-1] = s
            out[-1] = Span(last.start, max(last.end, s.end), best[-1].label)
        else:
            out.append(s)
            best.append(s)
    return out


def fill(base: list[Span], extra: list[Span], text: str) -> list[Span]:
    """`base` plus the parts of `extra` that `base` does not cover, so a second recogniser
    adds words without blurring the boundaries (and labels) of what the first one found."""
    if not extra:
        return base
    covered = merge(base)
    out = list(covered)
    j = 0
    for s in sorted(extra, key=lambda x: x.start):
        pos = s.start
        while j < len(covered) and covered[j].end <= pos:
            j += 1
        k = j
        while pos < s.end:
            if k < len(covered) and covered[k].start < s.end:
                piece_end = max(pos, covered[k].start)
                if piece_end > pos:
                    _add(out, text, pos, piece_end, s.label)
                pos = max(pos, covered[k].end)
                k += 1
            else:
                _add(out, text, pos, s.end, s.label)
                pos = s.end
    return merge(out)


def _add(out: list[Span], text: str, start: int, end: int, label: str) -> None:
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    if end > start:
        out.append(Span(start, end, label))


_JOINERS = re.compile(r"[ \t]*(?:-|&|of|of the)?[ \t]*")


def join_institutions(text: str, spans: list[Span]) -> list[Span]:
    """An institution found in pieces ("Riverbend" + "Valley" + "Medical Center") is one name:
    the surrogate replaces it whole ("Cedar Hill Hospital"), never word by word into a garble."""
    out: list[Span] = []
    for s in spans:
        if out:
            last = out[-1]
            joined = (s.start - last.end <= 8 and "\n" not in text[last.end:s.start]
                      and _JOINERS.fullmatch(text, last.end, s.start) is not None)
            if joined and "INSTITUTION" in (last.label, s.label) and {last.label, s.label} <= _PLACE_OR_NAME:
                out[-1] = Span(last.start, s.end, "INSTITUTION")
                continue
        out.append(s)
    return out


_PLACE_OR_NAME = frozenset({"INSTITUTION", "LOCATION", "NAME"})
