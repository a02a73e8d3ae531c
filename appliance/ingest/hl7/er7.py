"""ER7 (pipe-and-hat) text: normalising bytes, splitting segments, fields and components.

Kept separate from hl7apy so that the MLLP hot path (MSH pre-parse, ACK) costs
microseconds; hl7apy's full parse validates structure elsewhere."""
from __future__ import annotations

import codecs
from dataclasses import dataclass

from ...errors import InvalidMessage

BOM = codecs.BOM_UTF8

# MSH-18 values -> Python codecs. Unknown names fall back to UTF-8 with replacement.
_CHARSETS = {
    "": "utf-8", "ASCII": "ascii", "8859/1": "latin-1", "8859/2": "iso8859-2", "8859/5": "iso8859-5",
    "8859/7": "iso8859-7", "8859/8": "iso8859-8", "8859/9": "iso8859-9", "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8", "UTF-8": "utf-8", "UNICODE": "utf-8", "ISO IR6": "ascii",
    "ISO IR100": "latin-1", "ISO IR192": "utf-8", "BIG-5": "big5", "GB 18030-2000": "gb18030",
    "ISO IR87": "iso2022_jp", "KS X 1001": "euc_kr", "CNS 11643-1992": "big5", "UNICODE UTF-16": "utf-16",
}


@dataclass(frozen=True)
class Segment:
    name: str
    fields: tuple[str, ...]  # fields[n] is HL7 field n (for MSH, fields[1] is the field separator)

    def field(self, n: int) -> str:
        return self.fields[n] if n < len(self.fields) else ""


def _msh18(raw: bytes) -> str:
    line = raw.split(b"\r", 1)[0].split(b"\n", 1)[0]
    if len(line) < 4:
        return ""
    sep = line[3:4]
    parts = line.split(sep)
    # parts[0] = "MSH", parts[1] = encoding chars (MSH-2), so MSH-n is parts[n-1]
    return parts[17].decode("ascii", "replace").split("~")[0].strip() if len(parts) > 17 else ""


def decode_message(raw: bytes) -> str:
    """Bytes -> text: drop a UTF-8 BOM, honour MSH-18, normalise CR/LF/CRLF to CR."""
    if raw.startswith(BOM):
        raw = raw[len(BOM):]
    charset = _msh18(raw).upper()
    codec = _CHARSETS.get(charset, "utf-8")
    if charset in _DECLARED_UTF8:
        # A sender that declares UTF-8 and sends other bytes has a broken interface: storing
        # mojibake under an AA would hide it. Refused, with where, so the engine can be fixed.
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidMessage(f"bytes at offset {e.start} are not valid UTF-8, which MSH-18 declares; "
                                 "send UTF-8 or declare the character set used", segment="MSH", field=18,
                                 hl7_error_code="102") from None
    else:
        # Senders that declare nothing (or ASCII) often send Latin-1; keep the data rather than refuse it.
        for candidate in (codec, "utf-8", "latin-1"):
            try:
                text = raw.decode(candidate)
                break
            except UnicodeDecodeError:
                continue
    # NUL ends strings in C and has no place in report text: removed, wherever it stands.
    text = text.replace("\x00", "").replace("\r\n", "\r").replace("\n", "\r")
    return "\r".join(s for s in text.split("\r") if s.strip())


_DECLARED_UTF8 = frozenset({"UNICODE UTF-8", "UTF-8", "ISO IR192"})


# No report needs more segments than this (a long discharge summary is a few hundred OBX); a
# message of 100,000 segments cost every other sender seconds and hundreds of MB to parse.
MAX_SEGMENTS = 10_000


def split_segments(text: str) -> list[Segment]:
    if not text.startswith("MSH") or len(text) < 8:
        raise InvalidMessage("message does not start with an MSH segment", segment="MSH",
                             hl7_error_code="100")
    if (n := text.count("\r")) >= MAX_SEGMENTS:
        raise InvalidMessage(f"message has {n + 1} segments; at most {MAX_SEGMENTS} are accepted: split it",
                             hl7_error_code="100")
    fs = text[3]
    out = []
    for line in text.split("\r"):
        if not line:
            continue
        name = line[:3]
        parts = line.split(fs)
        fields = ("MSH", fs, *parts[1:]) if name == "MSH" else tuple(parts)
        out.append(Segment(name=name, fields=fields))
    return out


def msh_segment(text: str) -> Segment:
    """The message's MSH alone, without splitting the rest (a long result has hundreds of segments)."""
    return split_segments(text.split("\r", 1)[0])[0]


def components(value: str, enc: str) -> list[str]:
    return value.split(enc[0])


def subcomponents(value: str, enc: str) -> list[str]:
    return value.split(enc[3] if len(enc) > 3 else "&")


def repetitions(value: str, enc: str) -> list[str]:
    return [r for r in value.split(enc[1])] if value else []


def component(value: str, enc: str, n: int) -> str:
    """1-based component n, first subcomponent only."""
    comps = components(value, enc)
    return subcomponents(comps[n - 1], enc)[0] if n <= len(comps) else ""


def split_batch(text: str) -> list[str]:
    """A file or batch (FHS/BHS...BTS/FTS) -> its messages; a single message -> [it]."""
    if text.lstrip("\ufeff \t\r\n").startswith("<"):
        raise InvalidMessage("this is XML (HL7 v2 XML encoding, or a CDA/FHIR document), not HL7 v2 ER7: send "
                             "the message in the pipe-delimited encoding (MSH|^~\\&|...)", hl7_error_code="200")
    messages: list[list[str]] = []
    for line in text.split("\r"):
        tag = line[:3]
        if tag in ("FHS", "BHS", "BTS", "FTS"):
            continue
        if tag == "MSH":
            messages.append([line])
        elif messages:
            messages[-1].append(line)
        elif line.strip():
            raise InvalidMessage("a segment before the first MSH (a file or batch must start with MSH, "
                                 "FHS or BHS)", hl7_error_code="100")
    return ["\r".join(m) for m in messages]

