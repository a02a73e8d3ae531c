"""R1-style distilled models think aloud in <think>...</think> before answering; the
clinician sees only the answer. Reasoning is dropped wherever it appears: at the start, in
the middle, several times, or already open because the chat template opened it."""
from __future__ import annotations

from collections.abc import Iterable, Iterator

OPEN, CLOSE = "<think>", "</think>"


def strip_thinking(pieces: Iterable[str], opened: bool = False) -> Iterator[str]:
    """The answer text of a token stream. `opened`: the prompt already ended in <think>, so
    the stream starts inside the reasoning. An unclosed reasoning block yields nothing."""
    buf = ""
    thinking = opened
    said = False  # white space after reasoning is dropped only before the answer begins
    for piece in pieces:
        buf += piece
        while buf:
            if thinking:
                end = buf.find(CLOSE)
                if end < 0:
                    buf = buf[-(len(CLOSE) - 1):]  # a tag may be split across pieces
                    break
                thinking = False
                buf = buf[end + len(CLOSE):]
                if not said:
                    buf = buf.lstrip()
                continue
            start = buf.find(OPEN)
            if start >= 0:
                if start:
                    said = True
                    yield buf[:start]
                thinking = True
                buf = buf[start + len(OPEN):]
                continue
            # Hold back a tail that could be the beginning of "<think>" or a stray "</think>".
            hold = _partial_tag(buf)
            if hold < len(buf):
                said = True
                yield buf[: len(buf) - hold] if hold else buf
                buf = buf[len(buf) - hold:] if hold else ""
            break
    if buf and not thinking and OPEN not in buf:
        yield buf.replace(CLOSE, "")


def _partial_tag(buf: str) -> int:
    """How many trailing characters of `buf` could start a tag."""
    for tag in (CLOSE, OPEN):
        for n in range(min(len(tag) - 1, len(buf)), 0, -1):
            if tag.startswith(buf[-n:]):
                return n
    return 0
