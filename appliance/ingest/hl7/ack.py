"""HL7 acknowledgements: original mode (AA/AE/AR) and enhanced mode (CA/CE/CR, then the
application ack). An ACK answers in the sender's own delimiters and version, swaps
sending and receiving application/facility, and echoes MSH-10 in MSA-2."""
from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass

from ...domain import MessageHeader
from ...errors import InvalidMessage
from .escape import escape

_COUNTER = itertools.count(1)
_PREFIX = f"{os.getpid():x}"


def _control_id() -> str:
    return f"ACK{int(time.time() * 1000):x}{_PREFIX}{next(_COUNTER):06d}"


def _ts() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "+0000"


@dataclass(frozen=True)
class AckPlan:
    """Which acknowledgements a message asks for (MSH-15 accept, MSH-16 application)."""

    enhanced: bool
    accept_ack: str  # AL, NE, ER, SU or "" (original mode)
    app_ack: str


def ack_plan(h: MessageHeader | None) -> AckPlan:
    if h is None or not (h.accept_ack_type or h.app_ack_type):
        return AckPlan(False, "", "")
    return AckPlan(True, h.accept_ack_type.upper(), h.app_ack_type.upper())


def _wanted(condition: str, ok: bool) -> bool:
    # HL7 table 0155: AL always, NE never, ER only on error, SU only on success. Empty: always.
    return {"": True, "AL": True, "NE": False, "ER": not ok, "SU": ok}.get(condition, True)


def build_ack(h: MessageHeader | None, code: str, *, error: InvalidMessage | None = None,
              text: str = "") -> bytes:
    """One ACK message, ER7 bytes without MLLP framing. `h` None: the MSH was unreadable."""
    fs = h.field_sep if h else "|"
    enc = h.encoding_chars if h else "^~\\&"
    version = h.version if h else "2.5"
    trigger = h.message_type.split("^")[1] if h and "^" in h.message_type else ""
    msh = ["MSH", enc, h.receiving_app if h else "APPLIANCE", h.receiving_facility if h else "",
           h.sending_app if h else "", h.sending_facility if h else "", _ts(), "",
           f"ACK{enc[0]}{trigger}{enc[0]}ACK" if trigger else "ACK", _control_id(),
           h.processing_id or "P" if h else "P", version]
    if h and h.charset:
        msh += ["", "", "", "", "", h.charset]
    msa = ["MSA", code, h.control_id if h else ""]
    if text:
        msa.append(escape(text, fs, enc))
    segs = [fs.join(msh), fs.join(msa)]
    if error is not None:
        segs.append(_err(error, fs, enc, version))
    return ("\r".join(segs) + "\r").encode("utf-8")


_ERR_LEGACY = ("2.1", "2.2", "2.3", "2.3.1", "2.4")


def _err(error: InvalidMessage, fs: str, enc: str, version: str) -> str:
    """ERR in the sender's version: up to 2.4 ERR-1 is the only field (ELD: segment^sequence^
    field^code&text&table); from 2.5 ERR-1 is empty and 2, 3, 4, 8 carry location, code,
    severity and the message."""
    code, label = error.hl7_error_code, _ERR_TEXT.get(error.hl7_error_code, "Application internal error")
    comp, sub = enc[0], enc[3]
    if version in _ERR_LEGACY:
        eld = comp.join([error.segment, "1" if error.segment else "", str(error.field) if error.field else "",
                         sub.join([code, label, "HL70357"])])
        return fs.join(["ERR", eld])
    loc = f"{error.segment}{comp}1{comp}{error.field}" if error.segment and error.field else error.segment
    return fs.join(["ERR", "", loc, f"{code}{comp}{label}{comp}HL70357", "E", "", "", "",
                    escape(error.reason, fs, enc)])


def acks_for(h: MessageHeader | None, ok: bool, error: InvalidMessage | None) -> list[bytes]:
    """The acknowledgement(s) to send, in order, for a message that was committed (ok) or refused."""
    plan = ack_plan(h)
    if not plan.enhanced:
        if ok:
            return [build_ack(h, "AA")]
        return [build_ack(h, error.ack_code if error else "AE", error=error, text=error.reason if error else "")]
    out = []
    if _wanted(plan.accept_ack, ok):
        commit_code = "CA" if ok else ("CR" if error and error.ack_code == "AR" else "CE")
        out.append(build_ack(h, commit_code, error=None if ok else error, text="" if ok or not error else error.reason))
    if _wanted(plan.app_ack, ok) and plan.app_ack:
        out.append(build_ack(h, "AA" if ok else (error.ack_code if error else "AE"), error=None if ok else error,
                             text="" if ok or not error else error.reason))
    return out


_ERR_TEXT = {"100": "Segment sequence error", "101": "Required field missing", "102": "Data type error",
             "103": "Table value not found", "200": "Unsupported message type", "201": "Unsupported event code",
             "202": "Unsupported processing id", "203": "Unsupported version id", "207": "Application internal error"}
