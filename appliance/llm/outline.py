"""A clinical document's headings, whatever it is (a radiology report, a pathology report, an ECG,
a discharge summary, a progress note), each named by what it holds: the author's conclusion
(IMPRESSION, IMP, CONCLUSION, INTERPRETATION, DIAGNOSIS, DX, ASSESSMENT, A/P, CRITICAL RESULT...),
the findings, the reason for the study, medication changes, follow-up and so on; and the items
of a section (numbered, one per line, or its sentences)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .findings import sentences

# Canonical role -> the headings that announce it (lower case, spaces collapsed).
_ROLES: dict[str, tuple[str, ...]] = {
    "conclusion": ("impression", "impressions", "imp", "conclusion", "conclusions", "interpretation", "interp",
                   "opinion", "summary", "diagnosis", "diagnoses", "final diagnosis", "final diagnoses",
                   "pathologic diagnosis", "pathological diagnosis", "dx", "final dx", "assessment",
                   "assessment and plan", "assessment & plan", "assessment/plan", "a/p", "a&p", "a & p",
                   "critical result", "critical results", "critical finding", "critical findings",
                   "principal diagnosis", "primary diagnosis", "discharge diagnosis", "discharge diagnoses",
                   "secondary diagnoses", "secondary diagnosis", "diagnoses at discharge", "final impression",
                   "clinical impression", "impression and plan", "impression/plan", "assessment/recommendations",
                   "assessment and recommendations", "recommendations/assessment"),
    "comment": ("comment", "comments", "note", "addendum", "synoptic", "synoptic report"),
    "findings": ("findings", "finding", "results", "result", "description", "microscopic", "microscopic description",
                 "gross", "gross description", "measurements", "report", "smear", "cbc", "exam", "physical exam",
                 "examination", "objective", "o", "labs", "imaging", "data", "vitals", "doppler", "echo findings"),
    "question": ("clinical history", "history", "indication", "indications", "reason for exam", "reason for study",
                 "reason for referral", "reason for consult", "reason for consultation", "clinical",
                 "clinical information",
                 "clinical indication", "hpi", "history of present illness", "chief complaint", "cc", "subjective", "s",
                 "past medical history", "pmh", "family history", "fhx", "social history", "allergies",
                 "admission diagnosis", "admitting diagnosis", "reason for admission", "presentation"),
    "technique": ("technique", "procedure", "comparison", "comparisons", "specimen", "specimens", "protocol",
                  "contrast", "exam", "study", "patient", "dose", "radiopharmaceutical"),
    "course": ("hospital course", "course", "brief hospital course", "events", "overnight", "interval history",
               "procedures", "procedures performed", "operations", "procedure performed"),
    "plan": ("plan", "recommendation", "recommendations", "disposition", "plan of care", "recs"),
    "medications": ("medication changes", "medications changes", "changes to medications", "medication change",
                    "discharge medications", "medications", "new medications", "meds", "medication reconciliation",
                    "changes in medications", "medications at discharge", "home medications"),
    "follow_up": ("follow-up", "follow up", "followup", "follow-up appointments", "pending", "pending results",
                  "to do", "instructions", "discharge instructions"),
}
CANONICAL = {h: role for role, hs in _ROLES.items() for h in hs}
# A heading: at a line start, a few words then a colon.
_HEAD = re.compile(r"(?m)^[ \t*#>-]*(?P<name>[A-Za-z][A-Za-z /&'()-]{0,44}?)[ \t]*:[ \t]*")
_ITEM = re.compile(r"(?m)^[ \t]*(?:\(?\d{1,2}[.)]|[-*\u2022])[ \t]+")


@dataclass(frozen=True)
class Section:
    role: str  # a key of _ROLES, "other" or "body" (text before the first heading)
    heading: str
    start: int  # the section's text (after its heading) in the document
    end: int

    def text(self, doc: str) -> str:
        return doc[self.start:self.end]


def role_of(name: str) -> str:
    """The role of a heading's name ("IMP" -> "conclusion"), "other" when unknown."""
    return _role(name)


def _role(name: str) -> str:
    key = " ".join(name.lower().replace("(", " ").replace(")", " ").split())
    if key in CANONICAL:
        return CANONICAL[key]
    # "Discharge diagnoses (final)", "IMPRESSION / PLAN", "Left breast ... DIAGNOSIS"
    for role, tail in (("conclusion", r"(?:impression|diagnos[ie]s|conclusions?|interpretation|assessment)"),
                       ("medications", r"medications?(?: changes?)?"), ("follow_up", r"follow[- ]?up"),
                       ("findings", r"findings"), ("question", r"(?:history|indications?)")):
        if re.fullmatch(rf"(?:[a-z/&' -]+ )?{tail}(?: [a-z/&' -]+)?", key) and len(key.split()) <= 4:
            return role
    return "other"


# A known heading alone on its line, without a colon ("IMPRESSION", "Findings -").
_BARE = re.compile(r"(?m)^[ \t*#>-]*(?P<name>[A-Za-z][A-Za-z /&'-]{1,44}?)[ \t]*[-.]?[ \t]*$")
# A known heading may also follow a sentence on the same line ("TTE. Indication: ...").
_INLINE = re.compile(r"(?<=[.!?])[ \t]+(?P<name>[A-Za-z][A-Za-z /&'-]{0,30}?)[ \t]*:[ \t]*")
# Sections that state a fact about the study (its reason, its technique) in a line: when the
# heading has text after it, the section is that sentence, and what follows is the body.
_ONE_LINE_ROLES = frozenset({"question", "technique"})
# Sub-headings inside these sections ("NEW:", "STOPPED:", "Uterine contents:") belong to them.
_NESTING = frozenset({"medications", "conclusion", "comment", "follow_up", "plan"})


def outline(doc: str) -> list[Section]:
    """The document's sections in order. A heading is a known name, or a short capitalised
    phrase with a colon at a line start that is not a result ("Potassium: 7.1")."""
    heads = []
    for m in _HEAD.finditer(doc):
        name = m.group("name").strip()
        role = _role(name)
        line_end = doc.find("\n", m.end())
        rest = doc[m.end():line_end if line_end >= 0 else len(doc)]
        # An unknown name is a heading only when written as one: capitals or few words, not
        # followed on its line by a measured value.
        if role == "other" and (len(name.split()) > 4 or re.match(r"\s*[<>]?-?\d", rest) or not name[0].isupper()):
            continue
        heads.append((m.start(), m.end(), name, role))
    for m in _BARE.finditer(doc):
        role = _role(m.group("name"))
        # Only the names that announce a section, in capitals or title case, and not a title line.
        if role in ("conclusion", "findings", "question", "medications", "follow_up", "plan", "course") \
                and m.start() > 0 and (m.group("name").isupper() or m.group("name").istitle()) \
                and not any(s <= m.start() < e for s, e, _n, _r in heads):
            end = m.end() + 1 if m.end() < len(doc) else m.end()
            heads.append((m.start(), end, m.group("name").strip(), role))
    for m in _INLINE.finditer(doc):
        role = _role(m.group("name"))
        if role != "other" and not any(s <= m.start() < e for s, e, _n, _r in heads):
            heads.append((m.start(), m.end(), m.group("name").strip(), role))
    heads.sort()
    inline = {m.start() for m in _INLINE.finditer(doc)}
    out: list[Section] = []
    if not heads:
        return [Section("body", "", 0, len(doc))]
    if doc[:heads[0][0]].strip():
        out.append(Section("body", "", 0, heads[0][0]))
    for i, (s, e, name, role) in enumerate(heads):
        end = heads[i + 1][0] if i + 1 < len(heads) else len(doc)
        if role == "other" and out and out[-1].role in _NESTING:
            prev = out.pop()
            out.append(Section(prev.role, prev.heading, prev.start, end))
            continue
        if role in _ONE_LINE_ROLES:
            line_end = doc.find("\n", e)
            line_end = end if line_end < 0 else min(line_end, end)
            if doc[e:line_end].strip():
                # At a line start the section is its line; after a sentence, its first sentence.
                first = sentences(doc[e:line_end]) if s in inline else []
                stop = e + first[0][1] + 1 if first else line_end
                stop = min(max(stop, e), end)
                out.append(Section(role, name, e, stop))
                if doc[stop:end].strip():
                    out.append(Section("body", "", stop, end))
                continue
        out.append(Section(role, name, e, end))
    return out


def conclusion_sections(doc: str, sections: list[Section] | None = None) -> list[Section]:
    """The author's conclusion: every conclusion section, and the comments that follow one."""
    secs = outline(doc) if sections is None else sections
    out: list[Section] = []
    for s in secs:
        if not s.text(doc).strip():
            continue
        if s.role == "conclusion" or (s.role == "comment" and out):
            out.append(s)
    return out


def items(doc: str, start: int, end: int) -> list[tuple[int, int]]:
    """The items of doc[start:end]: numbered or bulleted entries, else lines, else sentences;
    each as offsets, the marker left out. A long item is split into its sentences."""
    part = doc[start:end]
    marks = list(_ITEM.finditer(part))
    spans: list[tuple[int, int]] = []
    if marks:
        if part[:marks[0].start()].strip():
            spans.append((0, marks[0].start()))
        for i, m in enumerate(marks):
            spans.append((m.end(), marks[i + 1].start() if i + 1 < len(marks) else len(part)))
    else:
        pos = 0
        for line in part.split("\n"):
            spans.append((pos, pos + len(line)))
            pos += len(line) + 1
    out: list[tuple[int, int]] = []
    for a, b in spans:
        for sa, sb in sentences(part[a:b]):
            out.append((start + a + sa, start + a + sb))
    return out
