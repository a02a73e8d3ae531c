"""What a report affirms and denies, sentence by sentence, with the character span each rests on.

A small, transparent reader of radiology prose: sentences, negation (a cue earlier in the same
clause), laterality, and measurements. The summary is anchored on it (the model is told which
sentences state positive findings) and checked against it (a side, a number or a negation the
summary states that the report does not is flagged)."""
from __future__ import annotations

import re
from dataclasses import dataclass

# Findings a chest or general radiology report affirms or denies. Written for this project.
FINDING_TERMS: dict[str, str] = {
    "cardiomegaly": r"cardiomegaly|cardiac enlargement|enlarged (?:heart|cardiac silhouette)|heart (?:size )?(?:is )?"
                    r"(?:mildly |moderately |severely |markedly )?enlarged",
    "effusion": r"(?:pleural )?effusions?|pleural fluid",
    "pneumothorax": r"pneumothora(?:x|ces)",
    "consolidation": r"consolidat\w*|airspace (?:disease|opacit\w*)|infiltrat\w*|pneumonia",
    "opacity": r"opacit\w*|opacification|densit(?:y|ies)",
    "atelectasis": r"atelecta\w*",
    "edema": r"edema|(?:pulmonary |vascular |venous )congestion",
    "nodule": r"nodul\w*|mass(?:es)?\b|lesions?",
    "granuloma": r"granulom\w*",
    "fracture": r"fractures?",
    "emphysema": r"emphysema\w*|hyperinflat\w*|hyperexpan\w*|\bcopd\b",
    "degenerative": r"degenerative|spondylos\w*|osteophyt\w*|arthritic",
    "scoliosis": r"scolios\w*|kyphos\w*",
    "hernia": r"hernia",
    "scarring": r"scar(?:ring)?\b|fibros\w*|fibrotic",
    "device": r"pacemaker|catheter|\btubes?\b|port-?a-?cath|\bpicc\b|stents?|\bleads?\b",
    "postsurgical": r"sternotomy|post-?operative|post-?surgical|surgical clips?|\bclips\b|cabg",
    "calcification": r"calcifi\w*",
    "lymphadenopathy": r"lymphadenopathy|(?:lymph )?nodes? (?:is |are )?enlarged|enlarged (?:\w+ ){0,3}(?:lymph )?nodes?|adenopathy",
}
# Findings a radiologist calls chronic or incidental: reported, but not "acute".
CHRONIC = frozenset({"granuloma", "degenerative", "scoliosis", "scarring", "device", "postsurgical",
                     "calcification", "emphysema"})
_TERMS = {k: re.compile(rf"\b(?:{v})", re.I) for k, v in FINDING_TERMS.items()}
NEGATION = re.compile(r"\b(?:no|not|without|negative for|free of|clear of|resolved|resolution of|absence of|"
                      r"absent|no evidence of|ruled out|removed|nor|neither)\b|\bclear\b(?=.*\b(?:of|without)\b)",
                      re.I)
_CLAUSE = re.compile(r"[;:]|,\s*(?:but|however|although)\b|\bbut\b|\bhowever\b|\botherwise\b|\bexcept\b"
                     r"|\bwhich\b|\bwith\b(?=[^.]*\b(?:no|without)\b)", re.I)
# A sentence ends at . ! ? before white space (not inside "2.1" or "Dr.Smith"), or at a line end.
_BOUNDARY = re.compile(r"(?<=[.!?])\s+|\s*\n\s*")
SIDES = re.compile(r"\b(left|right|bilateral(?:ly)?|both)\b", re.I)
MEASURE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?:\s*(?:x|by)\s*\d+(?:\.\d+)?)*\s*(mm|cm|m|ml|cc|%|mmhg|mg|g|kg)\b", re.I)


@dataclass(frozen=True)
class Finding:
    observation: str
    affirmed: bool
    side: str  # "left", "right", "bilateral" or ""
    start: int  # the source sentence, as character offsets into the report
    end: int


def sentences(text: str) -> list[tuple[int, int]]:
    out = []
    pos = 0
    bounds = [(m.start(), m.end()) for m in _BOUNDARY.finditer(text)] + [(len(text), len(text))]
    for cut, nxt in bounds:
        a, b = pos, cut
        pos = nxt
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a and any(c.isalpha() for c in text[a:b]):
            out.append((a, b))
    return out


def _side(clause: str, start: int, end: int) -> str:
    """The side of the finding at [start, end): the nearest side word before it in its own phrase
    ("small left effusion and right adenopathy": left for the effusion), else right after it."""
    phrase_start = max(clause.rfind(" and ", 0, start), clause.rfind(",", 0, start), clause.rfind(" with ", 0, start))
    before = [m for m in SIDES.finditer(clause, max(phrase_start, 0), start)]
    if before:
        words = {m.group().lower() for m in before}
    else:
        nxt = re.search(r"[,;]| and ", clause[end:])
        stop = end + (nxt.start() if nxt else len(clause) - end)
        words = {m.group().lower() for m in SIDES.finditer(clause, end, min(stop, end + 40))}
    words = {"bilateral" if w in ("both", "bilaterally") else w for w in words}
    if "bilateral" in words or {"left", "right"} <= words:
        return "bilateral"
    return next(iter(words), "")


def read(text: str) -> list[Finding]:
    """Every mention of a finding, affirmed or negated, with its sentence's span."""
    out: list[Finding] = []
    for a, b in sentences(text):
        sentence = text[a:b]
        for clause in _CLAUSE.split(sentence):
            for name, rx in _TERMS.items():
                for m in rx.finditer(clause):
                    negated = bool(NEGATION.search(clause[: m.start()]))
                    out.append(Finding(name, not negated, _side(clause, m.start(), m.end()), a, b))
    return out


def affirmed(text: str) -> set[str]:
    return {f.observation for f in read(text) if f.affirmed}


def negated(text: str) -> set[str]:
    return {f.observation for f in read(text) if not f.affirmed}
