"""A per-document time budget for de-identification. Every stage is linear in the text (long
runs are masked first, reports are capped in length), so a budget checked between stages
bounds a document's time to the budget plus one stage; a document over it is failed with a
reason and never retried, instead of holding the stage (and the CPU) from the documents behind."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_deadline: ContextVar[float] = ContextVar("deid_deadline", default=float("inf"))


class DeidTimeout(Exception):
    """Raised between stages once the document's budget is spent."""


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def check(stage: str) -> None:
    if time.monotonic() > _deadline.get():
        raise DeidTimeout(f"time budget spent before {stage}")
