"""Numbers are where a small model hurts most: it writes "0.9 cm" where the report says
1.4 cm. Every number in a summary is checked against the text the model was given; the ones
the report does not contain are recorded with the summary, so the client can mark them and
the clinician knows which figures to distrust."""
from __future__ import annotations

import re

# 1,200 / 1.4 / .5 / 7.44 / 120/80 (two numbers) / 37.5C (unit not needed to compare)
_NUMBER = re.compile(r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?![\d])")
_LIST_MARKER = re.compile(r"^\s*\d{1,2}[.)]\s", re.MULTILINE)


def _numbers(text: str) -> list[tuple[int, str]]:
    skip = {m.start() + len(m.group()) - len(m.group().lstrip()) for m in _LIST_MARKER.finditer(text)}
    out = []
    for m in _NUMBER.finditer(text):
        raw = m.group()
        if not raw or not any(c.isdigit() for c in raw) or m.start() in skip:
            continue
        out.append((m.start(), raw))
    return out


def normalise(raw: str) -> str:
    """"1,200" == "1200"; "1.40" == "1.4"; "0.5" == ".5"; "07" == "7"."""
    v = raw.replace(",", "")
    if "." in v:
        whole, frac = v.split(".", 1)
        frac = frac.rstrip("0")
        whole = whole.lstrip("0") or "0"
        return f"{whole}.{frac}" if frac else whole
    return v.lstrip("0") or "0"


def unsupported_numbers(summary: str, source: str) -> tuple[str, ...]:
    """The numbers of `summary` (as written, in order, once each) that `source` never states."""
    known = {normalise(raw) for _, raw in _numbers(source)}
    out: dict[str, None] = {}
    for _, raw in _numbers(summary):
        if normalise(raw) not in known:
            out[raw] = None
    return tuple(out)
