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
    # "heart (size) is enlarged" is read in INDIRECT, so that an impression names it.
    "cardiomegaly": r"cardiomegaly|cardiac enlargement|enlarged (?:heart|cardiac silhouette)",
    "effusion": r"(?:pleural )?effusions?|pleural fluid",
    "pneumothorax": r"pneumothora(?:x|ces)",
    "consolidation": r"consolidat\w*|airspace (?:disease|opacit\w*)|infiltrat\w*|pneumonia",
    "opacity": r"opacit\w*|opacification",
    "atelectasis": r"atelecta\w*",
    "edema": r"edema|(?:pulmonary |vascular |venous )congestion|engorge\w*",
    "nodule": r"nodul\w*|mass(?:es)?\b|lesions?",
    "granuloma": r"granulom\w*",
    "fracture": r"fractures?|(?:wedg\w*|compression) (?:\w+ ){0,2}deformit\w*",
    "emphysema": r"emphysema\w*|hyperinflat\w*|hyperexpan\w*|\bcopd\b|"
        r"flatten\w* of (?:the )?(?:\w+ )?(?:hemi)?diaphragms?",
    "degenerative": r"degenerative|spondylos\w*|osteophyt\w*|arthritic",
    "scoliosis": r"scolios\w*|kyphos\w*",
    "hernia": r"hernia",
    "scarring": r"scar(?:ring)?\b|fibros\w*|fibrotic",
    "device": r"pacemaker|catheter|\btubes?\b|port-?a-?cath|\bpicc\b|stents?|\bleads?\b",
    "postsurgical": r"sternotomy|post-?operative|post-?surgical|surgical clips?|\bclips\b|cabg",
    "calcification": r"calcifi\w*",
    "lymphadenopathy": r"lymphadenopathy|(?:lymph )?nodes? (?:is |are )?enlarged|"
        r"enlarged (?:\w+ ){0,3}(?:lymph )?nodes?|adenopathy",
}
# Findings stated indirectly: the words that make them a finding come after the organ, so a
# negation is looked for before the named group `cue` ("the heart is not enlarged"), and words
# between organ and cue stay within one phrase (no "and", "with", "normal").
_GAP = r"(?:\s+(?!and\b|with\b|but\b|normal\b|no\b|borderline\b|top\b|upper\b)[\w-]+){0,5}?\s+"
_DEGREE = r"(?:(?:again|still|now|mildly|moderately|markedly|severely|slightly|minimally|mild|moderate|to)\s+)*"
INDIRECT: dict[str, tuple[str, ...]] = {
    "cardiomegaly": (
        rf"\b(?:heart|cardiac|cardiomediastinal)\b{_GAP}(?P<cue>{_DEGREE}(?:enlarged|large)\b)",
        r"(?P<cue>enlarge\w*) (?:of |in )?(?:the )?(?:heart|cardiac|cardiomediastinal)\b"),
    "effusion": (
        rf"\b(?:costophrenic|cp)\b{_GAP}(?P<cue>{_DEGREE}blunt\w*)",
        r"(?P<cue>blunt\w*) (?:of )?(?:the )?(?:\w+ ){0,2}(?:costophrenic|cp)\b"),
    "edema": (rf"\bvascula\w*\b{_GAP}(?P<cue>{_DEGREE}(?:accentuated|engorged|indistinct|cephali\w*))",),
    "fracture": (r"(?P<cue>lucen\w*) (?:\w+ ){0,4}(?:through|across|crosses|of|in) (?:the )?(?:\w+ ){0,4}"
                 r"(?:ribs?|clavicle|scapula|humerus|vertebra\w*)\b",
                 r"\b(?:ribs?|clavic\w*)\b (?:\w+ )?(?P<cue>deformit\w*)"),
    "pneumothorax": (r"(?P<cue>pleural air)\b",),
    "opacity": (r"(?P<cue>densit(?:y|ies))\b",),
    "atelectasis": (r"(?P<cue>collaps\w*)",),
    "interstitial": (r"(?P<cue>(?:increased|prominent|accentuated|"
        r"coarse\w*) (?:[\w-]+ ){0,3}interstitial (?:markings?|opacit\w*))",
                     rf"\binterstitial (?:markings?|opacit\w*){_GAP}"
                     rf"(?P<cue>{_DEGREE}(?:increased|prominent|accentuated|coarse\w*))"),
}
_INDIRECT = [(k, re.compile(v, re.I)) for k, vs in INDIRECT.items() for v in vs]
# A finding an otherwise acute kind of which the report calls old, healed or unchanged is reported
# as chronic (an old rib fracture, a stable nodule): measured on the Open-i train split, such
# mentions reach the radiologist's impression about a third as often as new ones.
_AGED = re.compile(r"\b(?:old|healed|healing|remote|chronic|stable|unchanged|calcified|again (?:seen|noted))\b", re.I)
AGES = frozenset({"fracture", "nodule", "opacity", "hernia", "interstitial"})

# Findings a radiologist calls chronic or incidental: reported, but not "acute".
CHRONIC = frozenset({"granuloma", "degenerative", "scoliosis", "scarring", "device", "postsurgical",
                     "calcification", "emphysema"})
_TERMS = {k: re.compile(rf"\b(?:{v})", re.I) for k, v in FINDING_TERMS.items()}
NEGATION = re.compile(r"\b(?:no|not|without|negative for|free of|clear of|resolved|resolution of|absence of|"
                      r"absent|no evidence of|ruled out|removed|nor|neither|evaluation for|assessment for|"
                      r"(?:could|may|might|can) obscure)\b|\bclear\b(?=.*\b(?:of|without)\b)",
                      re.I)
_CLAUSE = re.compile(r"[;:]|,\s*(?:but|however|although)\b|\bbut\b|\bhowever\b|\botherwise\b|\bexcept\b"
                     r"|\bwhich\b|\bwith\b(?=[^.]*\b(?:no|without)\b)", re.I)
# Normality stated after the finding, in its own phrase ("vascular engorgement appears within
# limits of normal", "the mediastinal contours are unremarkable"): a negation as much as "no".
_COPULA = r"(?:is|are|appears?|remains?|seems?)\s+"
_NORMAL_AFTER = re.compile(rf"\w*(?:\s+(?!and\b|with\b|but\b|while\b)[\w-]+){{0,3}}?\s+(?:"
                           rf"(?:{_COPULA})?within (?:the )?(?:upper )?(?:limits of normal|normal limits)|"
                           rf"{_COPULA}(?:normal|unremarkable)\b)", re.I)
# A density the report explains away as something that is not disease ("nodular density ...
# secondary to soft tissue overlay", "curvilinear density ... represents a skinfold", pericardial
# fat, overlying leads, a radiopaque or subcutaneous fragment): measured on
# the Open-i train split, 18 of 24 such studies have no opacity, nodule or consolidation in the
# radiologist's impression.
_EXPLAINED_AWAY = re.compile(r"\b(?:(?:due|secondary|related|attributable) to (?:the )?(?:\w+ )?(?:overly\w*|"
    r"overlapp\w*|"
                             r"superimpos\w*|soft tissues?|epicardial fat|breast|nipple|skin ?folds?|rotation|"
                             r"positioning|technique|artifact)|(?:represents?|reflects?|likely|probably) (?:a |an )?"
                             r"(?:skin ?fold|artifact|summation|overlap\w*|superimpos\w*|confluence|nipple shadow|"
                             r"(?:\w+ ){0,2}(?:pleural|pericardial|epicardial) fat|overlying (?:\w+ )?(?:telemetry|"
                             r"leads?|wires?|"
                             r"clothing)|(?:projectile|bullet|metallic) fragments?)|\bradiopaque\b|\bsubcutaneous\b)",
                             re.I)
EXPLAINABLE = frozenset({"opacity", "nodule", "consolidation"})
# A sentence ends at . ! ? before white space (not inside "2.1" or "Dr.Smith"), or at a line end.
# Not after a title or a Latin abbreviation ("Dr. Okafor", "e.g. a cyst"): a name must not
# begin a sentence of its own.
_BOUNDARY = re.compile(r"(?<=[.!?])(?<!\bDr\.)(?<!\bMr\.)(?<!\bMs\.)(?<!\bMrs\.)(?<!\bSt\.)(?<!\bvs\.)"
                       r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bNo\.)(?<!\bapprox\.)(?<!\bProf\.)\s+|\s*\n\s*")
SIDES = re.compile(r"\b(left|right|bilateral(?:ly)?|both)\b", re.I)
MEASURE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?:\s*(?:x|by)\s*\d+(?:\.\d+)?)*\s*"
                     r"(mm|cm|m|ml|cc|%|mmhg|mg|g|kg)\b", re.I)


@dataclass(frozen=True)
class Finding:
    observation: str
    affirmed: bool
    side: str  # "left", "right", "bilateral" or ""
    start: int  # the source sentence, as character offsets into the report
    end: int
    chronic: bool = False  # a chronic kind, or one the report calls old, healed or stable
    cue: str = ""  # for a finding stated indirectly ("the heart is large"), the words that state it


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


def _phrase(clause: str, start: int, end: int) -> str:
    """The match with the words that qualify it from the left in its own phrase ("large" in
    "a large pleural air collection"), not past a comma, "and" or "with"."""
    pre = clause[max(0, start - 30):start]
    cut = max(pre.rfind(","), pre.rfind(" and "), pre.rfind(" with "))
    return (pre[cut + 1:] if cut >= 0 else pre).lstrip(" ,") + clause[start:end]


def _inner_side(phrase: str) -> str:
    words = {"bilateral" if w.lower() in ("both", "bilaterally") else w.lower() for w in SIDES.findall(phrase)}
    return "bilateral" if "bilateral" in words or {"left", "right"} <= words else next(iter(words), "")


def read(text: str) -> list[Finding]:
    """Every mention of a finding, affirmed or negated, with its sentence's span."""
    out: list[Finding] = []
    for a, b in sentences(text):
        sentence = text[a:b]
        # The explanation often follows in a clause of its own ("..., which represents a skinfold").
        explained_away = bool(_EXPLAINED_AWAY.search(sentence))
        for clause in _CLAUSE.split(sentence):
            aged = bool(_AGED.search(clause))
            hits = [(name, m.start(), m.end(), "", _side(clause, m.start(), m.end()))
                    for name, rx in _TERMS.items() for m in rx.finditer(clause)]
            hits += [(name, m.start("cue"), m.end(), _phrase(clause, m.start(), m.end()),
                      _inner_side(m.group(0)) or _side(clause, m.start(), m.end()))
                     for name, rx in _INDIRECT for m in rx.finditer(clause)]
            for name, start, end, cue, side in hits:
                negated = bool(NEGATION.search(clause[:start]) or _NORMAL_AFTER.match(clause, end)
                               or (name in EXPLAINABLE and explained_away))
                out.append(Finding(name, not negated, side, a, b, name in CHRONIC or (aged and name in AGES), cue))
    return out


# What a radiologist calls a finding the report states indirectly: the impression's register.
# Not a blunted costophrenic angle: measured on the Open-i train split, radiologists call it an
# effusion in half the impressions, so it is kept in the report's own words.
_NAMES = {"cardiomegaly": "cardiomegaly", "edema": "pulmonary vascular congestion", "fracture": "possible fracture",
          "pneumothorax": "pneumothorax", "atelectasis": "atelectasis"}
_DEGREES = re.compile(r"\b(mild|moderate|marked|severe|slight|small|large|tiny|trace|minimal|massive)", re.I)
_STABLE = re.compile(r"\b(?:stable|unchanged|again|persistent|remains|continued|redemonstrat\w*)\b", re.I)


def named(text: str, mentions: list[Finding] | None = None) -> list[str]:
    """The impression's name for each finding `text` states only indirectly, with its side, degree
    and stability ("Cardiac silhouette remains moderately enlarged" -> "Stable moderate
    cardiomegaly"); empty when every finding it affirms is already named. `mentions`: read(text),
    when the caller has it already."""
    found = [f for f in (read(text) if mentions is None else mentions) if f.affirmed]
    direct = {f.observation for f in found if not f.cue}
    out: list[str] = []
    for f in found:
        if not f.cue or f.observation in direct or f.observation not in _NAMES:
            continue
        degree = _DEGREES.search(f.cue.rsplit(" ", 1)[0] if " " in f.cue else "")  # "large" is the cue, not its degree
        words = [("stable" if _STABLE.search(text[f.start:f.end]) else ""),
                 (degree.group(1).lower() if degree else ""),
                 (f.side if f.side and f.observation != "fracture" else ""), _NAMES[f.observation]]
        phrase = " ".join(w for w in words if w)
        if phrase not in out:
            out.append(phrase)
        direct.add(f.observation)
    return out


def affirmed(text: str) -> set[str]:
    return {f.observation for f in read(text) if f.affirmed}


def negated(text: str) -> set[str]:
    return {f.observation for f in read(text) if not f.affirmed}


# Words that end a finding's noun phrase on the left ("there are", "lungs show") and the
# nouns a finding adjective takes after it ("degenerative changes", "hyperexpanded lungs").
_LEFT_STOP = frozenset("there is are was were be been of with and or but by has have shows show demonstrates again "
                       "also noted seen which that than to as from on in at for a an the this these appear appears "
                       "seem seems".split())
_HEADS = frozenset("changes change disease lungs lung markings deformity deformities clips clip granuloma granulomas "
                   "nodule nodules infection sequela sequelae line lines catheter catheters tube tubes formation "
                   "formations lead leads generator wires".split())


_PREDICATE = re.compile(r"(?i)\b(?P<subject>[a-z]+)\s+(?:is|are|appears?|remains?)\s+(?:overall\s+)?"
                        r"(?P<degree>(?:(?:mildly|moderately|markedly|severely|slightly|minimally)\s+)?)$")
# Terms that do not name a finding alone ("Leads." says less than the sentence).
_NOT_ALONE = frozenset("lead leads tube tubes clip clips lesion lesions mass masses".split())
_CONCLUDES = re.compile(r"(?i)\b(?:consistent with|compatible with|in keeping with|suggest\w*|represent\w*|likely|"
    r"probabl\w*|"
                        r"diagnostic of|indicat\w*)\s+(?:\w+\s+){0,2}$")


# What an impression line keeps of a chronic finding's qualifiers: its stability, degree and
# extent; where it is stays in the findings (measured on the Open-i train split: ROUGE-L +0.6
# against the radiologists' impressions, which name chronic findings in a word or two).
_KEPT_QUALIFIER = re.compile(r"(?i)stable|unchanged|old|healed|chronic|mild(?:ly)?|moderate(?:ly)?|severe(?:ly)?|"
                             r"marked(?:ly)?|multilevel|extensive|small|large|minimal|multiple")


def own_words(sentence: str, observation: str) -> str:
    """The report's own name for `observation` in `sentence`, as an impression line: the term
    with the words of its phrase that say how stable, severe or extensive it is ("Stable
    granuloma", "Multilevel degenerative changes"), not where it is; empty
    when the sentence states it only indirectly or names it by an adjective alone."""
    rx = _TERMS.get(observation)
    # A naming the report draws as its conclusion comes first ("hyperinflated lungs consistent
    # with emphysema"), then the others in order.
    found = list(rx.finditer(sentence)) if rx else []
    for m in sorted(found, key=lambda m: not _CONCLUDES.search(sentence[max(0, m.start() - 30):m.start()])):
        if not NEGATION.search(sentence[:m.start()]):
            phrase = _own_phrase(sentence, m, observation)
            if phrase:
                return phrase
    return ""


def _own_phrase(sentence: str, m: re.Match[str], observation: str) -> str:
    end = m.end()
    while end < len(sentence) and (sentence[end].isalnum() or sentence[end] in "-_"):
        end += 1  # the whole word
    left: list[str] = []
    for word in reversed(sentence[:m.start()].split()):
        bare = word.strip("()")
        if not re.fullmatch(r"[A-Za-z][\w-]*", bare) or bare.lower() in _LEFT_STOP:
            break
        left.insert(0, bare)
        if len(left) == 5:
            break
    left = [w for w in left if _KEPT_QUALIFIER.fullmatch(w)]
    after = re.match(r"\s+([A-Za-z]+)\b", sentence[end:])
    head = [after.group(1)] if after and after.group(1).lower() in _HEADS else []
    if not head:
        # A finding stated as a predicate ("the lungs are mildly hyperinflated") is named with
        # its subject after it ("Mildly hyperinflated lungs").
        pred = _PREDICATE.search(sentence[:m.start()])
        if pred and pred.group("subject").lower() in _HEADS:
            left, head = (pred.group("degree") or "").split(), [pred.group("subject").lower()]
    words = left + [sentence[m.start():end]] + head
    if len(words) == 1 and (re.search(r"(?:ed|ive|ous|al|ic)$", words[0], re.I) or words[0].lower() in _NOT_ALONE):
        return ""  # "Hyperexpanded." or "Leads." is no line: the caller keeps the sentence
    phrase = " ".join(words)
    return phrase[:1].upper() + phrase[1:] + "."
