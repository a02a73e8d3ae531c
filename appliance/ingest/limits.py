"""Bounds an input cannot move, whatever its transport."""
from __future__ import annotations

# The longest report text accepted (characters, after escapes are decoded). Real reports are a few
# thousand characters, long discharge summaries tens of thousands; de-identification is linear
# (measured about 1 s per 80,000 characters on one core), so this bounds one document to seconds.
MAX_REPORT_CHARS = 200_000


def too_long(length: int) -> str:
    return (f"report text is {length} characters; the most accepted is {MAX_REPORT_CHARS}: split the "
            "document, or send its text without embedded attachments")
