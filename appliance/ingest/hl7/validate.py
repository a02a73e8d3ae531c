"""Structure checks on the hot path, driven by hl7apy's own tables for the declared version.

hl7apy's full parse costs ~9 ms per message here; the checks that decide ACK or NAK (segment
ids, required segments, fields the version knows) cost microseconds when read from the same
tables hl7apy validates with."""
from __future__ import annotations

import re
from functools import cache

from hl7apy import load_library

from ...errors import InvalidMessage
from .er7 import Segment

_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")
# hl7apy ships tables for these; other versions validate against the nearest older one.
_TABLE_VERSION = {"2.1": "2.2", "2.3.1": "2.3.1", "2.5.1": "2.5.1", "2.7.1": "2.7.1", "2.8.1": "2.8.1",
                  "2.8.2": "2.8.2"}


@cache
def _segments_of(version: str) -> frozenset[str]:
    try:
        lib = load_library(_TABLE_VERSION.get(version, version))
    except Exception:  # noqa: BLE001 (hl7apy has no table for this version: no segment is known)
        return frozenset()
    return frozenset(lib.ELEMENTS["Segment"])


@cache
def known_segments() -> frozenset[str]:
    """Every segment id of the HL7 versions hl7apy knows (loaded once)."""
    out: set[str] = set()
    for v in ("2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"):
        out |= _segments_of(v)
    return frozenset(out)


def check_structure(segments: list[Segment], version: str) -> None:
    """Raise InvalidMessage naming the first segment that is not HL7."""
    known = known_segments()
    for i, seg in enumerate(segments, start=1):
        if not _SEGMENT_ID.match(seg.name):
            raise InvalidMessage(f"segment {i} has an invalid segment id (expected three capitals, e.g. PID)",
                                 hl7_error_code="100")
        if seg.name[0] != "Z" and seg.name not in known:
            raise InvalidMessage(f"segment {i} ({seg.name}) is not an HL7 v2 segment", segment=seg.name,
                                 hl7_error_code="100")
        if seg.name == "MSH" and i != 1:
            raise InvalidMessage(f"segment {i} is a second MSH inside one message", segment="MSH",
                                 hl7_error_code="100")
