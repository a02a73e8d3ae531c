"""Putting the real identity back, for a clinician who is allowed to see it. The surrogate map
kept (encrypted) with each document turns its de-identified text and its summary back into
the patient's own names, numbers and dates. Every call is audited with its purpose; the audit
entry names the document and the purpose, never what was revealed."""
from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass

from ..deid import deidentify
from ..domain import KnownIdentifiers
from ..errors import InvalidRequest
from ..store.db import Store

PURPOSES = ("TREATMENT", "QUALITY_REVIEW", "PATIENT_REQUEST")


@dataclass(frozen=True)
class Reidentified:
    document_id: str
    text: str
    summary: str  # "" when the document has no summary yet


_POSITION = re.compile(r"@(\d+):(\d+)")


def restore_document(text: str, mapping: dict[str, str]) -> str:
    """The de-identified report with each replacement put back where it was made: exact,
    byte for byte, and nothing else touched. Documents stored before positions were recorded
    fall back to `restore`."""
    places = sorted((int(m.group(1)), int(m.group(2)), o) for k, o in mapping.items()
                    if (m := _POSITION.fullmatch(k)))
    if not places or places[-1][1] > len(text):
        return restore(text, mapping)
    out: list[str] = []
    pos = 0
    for start, end, original in places:
        out.append(text[pos:start])
        out.append(original)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def restore(text: str, mapping: dict[str, str]) -> str:
    """Replace each surrogate (whole words, any case: the model may capitalise) by its original:
    for text written from the report, such as its summary, where positions do not carry over.
    Placeholders ("[date]") are shared by many originals and cannot be undone."""
    usable = {s: o for s, o in mapping.items()
              if s and not s.startswith("@") and not (s.startswith("[") and s.endswith("]"))}
    if not usable:
        return text
    lookup = {s.lower(): o for s, o in usable.items()}
    rx = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(s) for s in sorted(usable, key=len, reverse=True))
                    + r")(?!\w)", re.IGNORECASE)
    return rx.sub(lambda m: lookup.get(m.group().lower(), m.group()), text)


MAX_REASON = 200


def reidentify(store: Store, doc_id: str, purpose: str, actor: str, reason: str = "") -> Reidentified:
    if purpose not in PURPOSES:
        raise InvalidRequest(f"purpose must be one of {', '.join(PURPOSES)}; it is recorded in the audit log")
    if len(reason) > MAX_REASON:
        raise InvalidRequest(f"reason is {len(reason)} characters; at most {MAX_REASON}")
    doc = store.get_document(doc_id)  # NotFound names the id
    mapping = store.surrogate_map(doc_id)
    summary = store.get_summary(doc_id)
    detail = f"purpose={purpose}"
    if reason.strip():
        # The audit log holds no identifier: a name or number typed into the reason is replaced
        # (with the patient's own declared identifiers known) before it is written.
        known = store.patient_known(doc.patient_ref) or KnownIdentifiers(patient_key=doc.patient_ref)
        clean = " ".join(deidentify(reason.strip(), known, secrets.token_bytes(32)).text.split())
        detail += f" reason={json.dumps(clean)}"
    store.audit(actor, "document.reidentified", doc_id, detail)
    return Reidentified(doc_id, restore_document(doc.deid_text, mapping),
                        restore(summary.text, mapping) if summary else "")
