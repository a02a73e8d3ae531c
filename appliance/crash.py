"""Crash output without patient data. An exception's message may quote the value that broke
it (a name a parser choked on), and Python prints that message with every uncaught
traceback. Here an uncaught exception is logged as its type and the code locations only."""
from __future__ import annotations

import logging
import sys
import threading
import traceback
from types import TracebackType

log = logging.getLogger("appliance.crash")


def describe(exc_type: type[BaseException], tb: TracebackType | None) -> str:
    frames = traceback.extract_tb(tb)[-6:]
    where = " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in reversed(frames))
    return f"{exc_type.__name__} at {where or '?'} (message withheld: it may quote patient data)"


def _hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    log.critical("uncaught %s", describe(exc_type, tb))


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread else "?"
    log.critical("uncaught in thread %s: %s", name, describe(args.exc_type, args.exc_traceback))


def install() -> None:
    sys.excepthook = _hook
    threading.excepthook = _thread_hook
