"""Whether a DICOM dataset arrived whole. pydicom reads a value that ends early without a word
(a C-STORE whose last fragment came short was stored as "...No pneumothorax on the le" and
answered Success), so the encoded elements are walked once before they are read: every
element's declared length must fit in what arrived, and every sequence or item of undefined
length must be closed. Its cost is one pass over the bytes, without decoding a value."""
from __future__ import annotations

import struct

from ...errors import InvalidMessage

UNDEFINED = 0xFFFFFFFF
# Explicit VRs whose length is a 4-byte field after two reserved bytes (PS3.5 7.1.2).
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
ITEM, ITEM_END, SEQUENCE_END = 0xE000, 0xE00D, 0xE0DD


def check_complete(data: bytes, implicit: bool, little: bool = True) -> None:
    """Raise InvalidMessage naming the first element that does not fit, or the sequence that is
    never closed."""
    order = "<" if little else ">"
    pos, n = 0, len(data)
    # What each open element of undefined length holds: "sq" (items of elements) or "frames"
    # (encapsulated data: items of raw bytes); items of undefined length are "item".
    stack: list[str] = []
    while pos < n:
        if pos + 8 > n:
            raise _cut(f"it ends inside an element's header at byte {pos}")
        group, element = struct.unpack_from(f"{order}HH", data, pos)
        if group == 0xFFFE:  # items and delimiters: a tag and a 4-byte length, always little-endian VR-less
            (length,) = struct.unpack_from(f"{order}I", data, pos + 4)
            pos += 8
            if element == ITEM and length == UNDEFINED:
                stack.append("item")
            elif element in (ITEM_END, SEQUENCE_END):
                if not stack:
                    raise _cut(f"a delimiter at byte {pos - 8} closes nothing")
                stack.pop()
            elif element == ITEM:
                if pos + length > n:
                    raise _cut(f"an item declares {length} bytes and {n - pos} arrived")
                if stack and stack[-1] == "frames":
                    pos += length  # a fragment of encapsulated data: bytes, not elements
            # A defined-length item of a sequence: its elements follow and are walked as any others.
            continue
        vr, length, pos = _element_header(data, pos, implicit, order, group, element)
        if length == UNDEFINED:
            encapsulated = vr not in (b"", b"SQ") or (group, element) == (0x7FE0, 0x0010)
            stack.append("frames" if encapsulated else "sq")
            continue
        if pos + length > n:
            raise _cut(f"element ({group:04X},{element:04X}) declares {length} bytes and {n - pos} arrived")
        pos += length
    if stack:
        raise _cut(f"{len(stack)} sequence(s) or item(s) of undefined length are never closed")


def _element_header(data: bytes, pos: int, implicit: bool, order: str, group: int,
                    element: int) -> tuple[bytes, int, int]:
    """(VR, value length, where the value starts) of the element whose tag is at `pos`."""
    if implicit:
        (length,) = struct.unpack_from(f"{order}I", data, pos + 4)
        return b"", length, pos + 8
    vr = data[pos + 4:pos + 6]
    if vr in _LONG_VRS:
        if pos + 12 > len(data):
            raise _cut(f"it ends inside the header of element ({group:04X},{element:04X})")
        (length,) = struct.unpack_from(f"{order}I", data, pos + 8)
        return vr, length, pos + 12
    (length,) = struct.unpack_from(f"{order}H", data, pos + 6)
    return vr, length, pos + 8


def _cut(where: str) -> InvalidMessage:
    return InvalidMessage(f"DICOM dataset incomplete: {where}; nothing was stored (kept as a dead letter): "
                          "send the whole instance again")


def part10_body(raw: bytes) -> tuple[bytes, str] | None:
    """(the dataset after the file meta information, its transfer syntax UID) of a Part 10 file,
    or None when `raw` has no preamble and "DICM" prefix."""
    if len(raw) < 144 or raw[128:132] != b"DICM" or raw[132:136] != b"\x02\x00\x00\x00":
        return None
    (group_length,) = struct.unpack_from("<I", raw, 140)  # (0002,0000) UL, explicit VR little endian
    meta_end = 144 + group_length
    if meta_end > len(raw):
        raise _cut("the file meta information is longer than the file")
    ts = ""
    pos = 144
    while pos + 8 <= meta_end:
        group, element = struct.unpack_from("<HH", raw, pos)
        vr = raw[pos + 4:pos + 6]
        if vr in _LONG_VRS:
            (length,) = struct.unpack_from("<I", raw, pos + 8)
            start = pos + 12
        else:
            (length,) = struct.unpack_from("<H", raw, pos + 6)
            start = pos + 8
        if (group, element) == (0x0002, 0x0010):
            ts = raw[start:start + length].rstrip(b"\x00 ").decode("ascii", "replace")
        pos = start + length
    return raw[meta_end:], ts
