"""Report text from OBX/NTE (and TXA for documents), in message order, escapes decoded."""
from __future__ import annotations

from .er7 import Segment, component, components, repetitions
from .escape import unescape

NARRATIVE_TYPES = {"TX", "FT"}


def _label(obx3: str, enc: str) -> str:
    return unescape(component(obx3, enc, 2) or component(obx3, enc, 1), enc).strip()


def _value(vtype: str, raw: str, enc: str) -> str:
    reps = []
    for rep in repetitions(raw, enc):
        comps = [unescape(c, enc).strip() for c in components(rep, enc)]
        if vtype in ("CE", "CWE", "CNE", "CF", "CX", "EI"):
            v = comps[1] if len(comps) > 1 and comps[1] else comps[0]
        elif vtype == "SN":
            v = "".join(comps)
        elif vtype in NARRATIVE_TYPES or vtype in ("ST", "NM", "TS", "DT", "DTM", "TM", "ID", "IS"):
            v = unescape(rep, enc).strip()
        else:
            v = ""  # ED, RP, encapsulated data: not report text
        if v:
            reps.append(v)
    return ", ".join(reps)


def report_text(segments: list[Segment], enc: str) -> str:
    """The report's text; "" when no OBX or NTE carries any (order titles alone are no report:
    an ORU whose OBX were folded into its OBR must be refused, not stored as its headings)."""
    lines: list[str] = []
    content = False
    last_label = None
    for seg in segments:
        if seg.name == "OBR":
            title = _label(seg.field(4), enc)
            if title:
                lines.append(f"{title.upper()}:" if not lines else f"\n{title.upper()}:")
            last_label = None
        elif seg.name == "OBX":
            vtype = seg.field(2).strip().upper()
            label = _label(seg.field(3), enc)
            if vtype in NARRATIVE_TYPES:
                body = "\n".join(unescape(r, enc) for r in repetitions(seg.field(5), enc))
                if label and label != last_label:
                    lines.append(f"{label}:")
                lines.append(body.rstrip())
                content = content or bool(body.strip())
                last_label = label
                continue
            value = _value(vtype, seg.field(5), enc)
            if not value:
                continue
            units = unescape(component(seg.field(6), enc, 2) or component(seg.field(6), enc, 1), enc)
            ref = unescape(seg.field(7), enc).strip()
            flag = unescape(seg.field(8), enc).strip()
            line = f"{label}: {value}" if label else value
            if units:
                line += f" {units.strip()}"
            if ref:
                line += f" (ref {ref})"
            if flag and flag.upper() not in ("N", ""):
                line += f" [{flag}]"
            lines.append(line)
            content = True
            last_label = label
        elif seg.name == "NTE":
            comment = "\n".join(unescape(r, enc) for r in repetitions(seg.field(3), enc)).strip()
            if comment:
                lines.append(comment)
                content = True
    return "\n".join(lines).strip() if content else ""
