"""Text every recogniser can read: whatever a caller passes, de-identification never raises
on its characters."""
from __future__ import annotations

import re

# Lone surrogates cannot be encoded (the tagger's C library and every file writer raise on
# them) and NUL ends strings in C: each is replaced by U+FFFD, one for one, so offsets hold.
_INVALID = re.compile("[\ud800-\udfff\x00]")


def scrub(text: str) -> tuple[str, int]:
    """`text` with unencodable characters replaced, and how many there were."""
    clean, n = _INVALID.subn("\ufffd", text)
    return clean, n
