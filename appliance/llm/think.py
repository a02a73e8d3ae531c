"""R1-style distilled models think aloud in <think>...</think> before answering; the
clinician sees only the answer."""
from __future__ import annotations

from collections.abc import Iterable, Iterator

OPEN, CLOSE = "<think>", "</think>"


def strip_thinking(pieces: Iterable[str]) -> Iterator[str]:
    buf = ""
    thinking = False
    decided = False
    for piece in pieces:
        buf += piece
        if not decided:
            stripped = buf.lstrip()
            if len(stripped) < len(OPEN) and OPEN.startswith(stripped):
                continue
            decided = True
            if stripped.startswith(OPEN):
                thinking = True
                buf = stripped[len(OPEN):]
        if thinking:
            end = buf.find(CLOSE)
            if end < 0:
                buf = buf[-len(CLOSE):]
                continue
            thinking = False
            buf = buf[end + len(CLOSE):].lstrip()
        if buf:
            yield buf
            buf = ""
    if buf and not thinking:
        yield buf
