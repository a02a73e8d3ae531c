"""MSH pre-parse: what is needed to route, acknowledge and de-duplicate a message,
without a full parse."""
from __future__ import annotations

import re

from ...domain import MessageHeader
from ...errors import InvalidMessage
from .er7 import Segment, component
from .escape import unescape

# HL7 message type and trigger event codes (tables 0076, 0003) are three letters or digits.
_CODE = re.compile(r"[A-Z0-9]{3}")
_VERSION = re.compile(r"\d\.\d(?:\.\d){0,2}")
# MSH-10 is ST of 20 characters up to v2.6 and 199 from v2.7: the longer bound, for every version.
MAX_CONTROL_ID = 199
SUPPORTED_VERSIONS = ("2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1",
                      "2.8", "2.8.1", "2.8.2")


def read_header(msh: Segment) -> MessageHeader:
    if msh.name != "MSH":
        raise InvalidMessage("first segment is not MSH", segment="MSH", hl7_error_code="100")
    enc = msh.field(2)
    if len(enc) < 4 or len(set(enc[:4])) < 4 or msh.field(1) in enc:
        raise InvalidMessage("MSH-2 encoding characters invalid (expected four distinct characters "
                             "such as ^~\\&)", segment="MSH", field=2, hl7_error_code="102")

    def get(n: int, comp: int = 0) -> str:
        raw = msh.field(n)
        return unescape(component(raw, enc, comp) if comp else raw, enc).strip()

    msg_code, trigger = get(9, 1), get(9, 2)
    if not msg_code:
        raise InvalidMessage("MSH-9 (message type) missing", segment="MSH", field=9, hl7_error_code="101")
    if not _CODE.fullmatch(msg_code) or (trigger and not _CODE.fullmatch(trigger)):
        # Never quoted: a field-shifted MSH puts a patient's name here, and reasons reach logs.
        raise InvalidMessage(f"MSH-9 holds no message type code ({len(msg_code) + len(trigger)} characters; "
                             "expected such as ORU^R01): are the MSH fields shifted?", segment="MSH", field=9,
                             hl7_error_code="102")
    control_id = get(10)
    if not control_id:
        raise InvalidMessage("MSH-10 (message control id) missing", segment="MSH", field=10,
                             hl7_error_code="101")
    if len(control_id) > MAX_CONTROL_ID:
        raise InvalidMessage(f"MSH-10 (message control id) is {len(control_id)} characters; at most "
                             f"{MAX_CONTROL_ID} are accepted", segment="MSH", field=10, hl7_error_code="102")
    version = get(12, 1)
    if not version:
        raise InvalidMessage("MSH-12 (version id) missing", segment="MSH", field=12, hl7_error_code="101")
    if version not in SUPPORTED_VERSIONS:
        shown = repr(version) if _VERSION.fullmatch(version) else f"of {len(version)} characters"
        raise InvalidMessage(f"MSH-12 version {shown} not supported; send 2.1-2.8.2", segment="MSH",
                             field=12, hl7_error_code="203")
    return MessageHeader(
        field_sep=msh.field(1), encoding_chars=enc,
        sending_app=msh.field(3), sending_facility=msh.field(4),
        receiving_app=msh.field(5), receiving_facility=msh.field(6),
        message_type=f"{msg_code}^{trigger}" if trigger else msg_code,
        control_id=control_id, processing_id=get(11, 1), version=version,
        accept_ack_type=get(15), app_ack_type=get(16), charset=get(18),
    )


def partial_header(msh: Segment) -> MessageHeader | None:
    """What can be read of an MSH that `read_header` refused, so the refusal still reaches the
    sender in its own delimiters with MSA-2 echoing its MSH-10 (an engine correlates ACKs by it)."""
    if msh.name != "MSH":
        return None
    enc = msh.field(2)
    if len(enc) < 4 or len(set(enc[:4])) < 4 or msh.field(1) in enc:
        enc = "^~\\&"
    version = component(msh.field(12), enc, 1).strip()
    return MessageHeader(
        field_sep=msh.field(1) or "|", encoding_chars=enc,
        sending_app=msh.field(3), sending_facility=msh.field(4),
        receiving_app=msh.field(5), receiving_facility=msh.field(6),
        message_type="", control_id=unescape(msh.field(10)[:MAX_CONTROL_ID * 2], enc).strip()[:MAX_CONTROL_ID],
        processing_id=component(msh.field(11), enc, 1).strip() or "P",
        version=version if version in SUPPORTED_VERSIONS else "2.5",
        accept_ack_type="", app_ack_type="", charset="")
