"""Text every recogniser can read: whatever a caller passes, de-identification never raises
on its characters."""
from __future__ import annotations

import re

# Lone surrogates cannot be encoded (the tagger's C library and every file writer raise on
# them) and NUL ends strings in C: each is replaced by U+FFFD, one for one, so offsets hold.
# Combining marks of the common scripts (Latin accents, Cyrillic, Hebrew, Arabic, Devanagari,
# Thai, kana): Python's \w does not count them as letters, so word patterns add them.
MARKS = ("\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u05bf-\u05c7\u0610-\u061a\u064b-\u065f\u0670"
         "\u06d6-\u06ed\u0900-\u0903\u093a-\u094f\u0e31\u0e34-\u0e3a\u0e47-\u0e4e\u1ab0-\u1aff"
         "\u1dc0-\u1dff\u20d0-\u20ff\u3099\u309a\ufe20-\ufe2f")

_INVALID = re.compile("[\ud800-\udfff\x00]")


def scrub(text: str) -> tuple[str, int]:
    """`text` with unencodable characters replaced, and how many there were."""
    clean, n = _INVALID.subn("\ufffd", text)
    return clean, n
