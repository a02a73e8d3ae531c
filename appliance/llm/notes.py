"""A note for the next clinician: a discharge summary, a progress or nursing note, a consult.
Its problems (the diagnoses and the assessment, critical ones first), its medication changes
(new, stopped, held, dose changed: each drug and dose exactly as the note writes it) and its
follow-up (appointments, what is pending). Every item is the note's own words with its span:
a dose is copied, never written."""
from __future__ import annotations

import re

from ..deid.drugs import INN_STEMS
from .extract import Line, body_lines, conclusion_lines, item_line, lead_with_critical
from .outline import Section, items

# A change to a medication, as notes write it.
CHANGE = re.compile(r"(?i)\b(?:start(?:ed|ing)?|initiat\w+|begin|began|add(?:ed)?|stop(?:ped)?|recommend\w*|"
                    r"discontinu\w+|d/c'?d?|dc'?d|held|hold(?:ing)?|on hold|increas\w+|decreas\w+|reduc\w+|"
                    r"titrat\w+|switch\w*|chang\w+|resum\w+|restart\w*|taper\w*|wean\w*|uptitrat\w*|"
                    r"double[sd]?|halve[sd]?|replac\w+ (?:with|by)|convert\w*|transition\w*|prescrib\w+|"
                    r"no longer|cease\w*|withh[oe]ld\w*)\b")
# A drug is named by a dose, a route or frequency, or a word of the pharmacopoeia's own shape
# (INN stems: -pril, -sartan, -olol, -statin, ...), not by a list of names.
_DRUGLIKE = re.compile(
    r"(?i)\b\d+(?:\.\d+)?\s*(?:mg|mcg|micrograms?|g|units?|u|ml|meq|mmol|puffs?|tabs?|tablets?|drops?)\b|"
    r"\b(?:po|iv|im|sc|subq|sq|sl|pr|inh|bid|tid|qid|qd|qhs|prn|daily|nightly|twice daily|once daily|at bedtime|"
    r"every \d+ hours)\b|"
    rf"\b\w+(?:{INN_STEMS})\b|"
    r"\b(?:insulin|aspirin|warfarin|heparin|digoxin|lithium|potassium|magnesium|iron|vitamin \w+|"
    r"nitroglycerin|epinephrine|norepinephrine|vasopressin|glucagon|allopurinol|colchicine|levothyroxine|"
    r"metformin|amiodarone|furosemide|spironolactone|acetaminophen|oxygen)\b")
_FOLLOW = re.compile(r"(?i)\b(?:follow[- ]?up|f/u|clinic|appointment|appt|recheck|repeat|pending|outpatient|"
                     r"referr\w*|refer|return (?:to|in)|in \d+ (?:days?|weeks?|months?)|see (?:dr|pcp|gp)|"
                     r"schedul\w+|call\w* (?:back|the)|awaiting|await\w*|rehab)\b")
# What a plan says it will do or asks for (a recommendation in a consult, a test pending).
_PLAN = re.compile(r"(?i)\b(?:recommend\w*|advis\w+|suggest\w*|plan\w*|will\b|should\b|pending|follow[- ]?up|"
                   r"referr\w*|refer\b|recheck|repeat|schedul\w+|consult\w*|appointment|clinic|return)\b")
_NEW_MARK = re.compile(r"(?i)\bnew\b")
_NONE = re.compile(r"(?i)^\s*(?:none|no changes?|n/a|nil|no new medications?|unchanged)\b")


def _item_lines(doc: str, sec: Section, origin: str) -> list[Line]:
    return [ln for a, b in items(doc, sec.start, sec.end) if (ln := item_line(doc, a, b, origin)) is not None]


def is_medication_change(sentence: str) -> bool:
    return bool(CHANGE.search(sentence)) and bool(_DRUGLIKE.search(sentence)) and not _NONE.match(sentence)


def note_lines(doc: str, sections: list[Section]) -> dict[str, list[Line]]:
    """{"problems", "medication_changes", "follow_up"}, each a list of the note's own lines."""
    problems, _told = conclusion_lines(doc, sections)
    meds: list[Line] = []
    follow: list[Line] = []
    for sec in sections:
        if sec.role == "medications":
            lines = _item_lines(doc, sec, "medications")
            # In a medication list, "(NEW)" or "new:" marks a change as much as a verb does.
            changed = [ln for ln in lines if is_medication_change(ln.text) or _NONE.match(ln.text)
                       or (_NEW_MARK.search(ln.text) and _DRUGLIKE.search(ln.text))]
            # A "medication changes" list is all changes; a discharge medication list only where
            # it says what changed (else every home drug would read as a change).
            listed = lines if "change" in sec.heading.lower() or "new" in sec.heading.lower() else changed
            # A change verb makes it a change ("HOLD meloxicam until seen in clinic"); an
            # appointment in the list without a drug is follow-up.
            plain_follow = [ln for ln in lines if _FOLLOW.search(ln.text) and not _DRUGLIKE.search(ln.text)
                            and not CHANGE.search(ln.text)]
            meds.extend(ln for ln in listed if ln not in plain_follow)
            follow.extend(plain_follow)
        elif sec.role == "follow_up":
            follow.extend(_item_lines(doc, sec, "follow_up"))
    # Changes and follow-up written in the prose: the plan always; the course, the assessment and
    # the body only where no medication section says what changed.
    taken = {ln.spans for ln in meds + follow}
    prose = ("plan",) if meds else ("course", "plan", "conclusion", "body", "other", "findings")
    for sec in sections:
        if sec.role not in prose:
            continue
        for ln in _item_lines(doc, sec, "body"):
            if ln.spans in taken or any(_overlaps(ln, p) for p in problems):
                continue
            if is_medication_change(ln.text) and not any(_overlaps(ln, m) for m in meds):
                meds.append(Line(ln.text, ln.spans, "medications", ln.critical))
            elif (sec.role == "plan" or _FOLLOW.search(ln.text)) and sec.role != "conclusion" \
                    and not any(_overlaps(ln, f) for f in follow) and (sec.role == "plan" or _PLAN.search(ln.text)):
                follow.append(Line(ln.text, ln.spans, "follow_up", ln.critical))
    if not problems:
        # No diagnosis or assessment written: the abnormal statements of the note's body.
        problems, _all_normal = body_lines(doc, sections, limit=5, report=False)
    problems = [p for p in problems if not any(_overlaps(p, m) for m in meds)] or problems
    problems = lead_with_critical(problems, doc)
    meds = [m for m in meds if not _NONE.match(m.text) or len(meds) == 1]
    return {"problems": problems[:10] if not any(p.critical for p in problems[10:]) else problems,
            "medication_changes": meds, "follow_up": follow[:6]}


def _overlaps(x: Line, y: Line) -> bool:
    return any(a < d and c < b for a, b in x.spans for c, d in y.spans)
