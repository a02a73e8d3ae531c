"""De-identification: pure functions, no I/O at call time.

`deidentify(text, known, secret)` finds PHI spans (declared identifiers first, then
patterns, dictionaries and context cues), and replaces each with a surrogate that is
consistent per patient and per installation."""
from .engine import deidentify, find_spans, surrogate_name

__all__ = ["deidentify", "find_spans", "surrogate_name"]
