"""Words that look like names or places to a dictionary or to the tagger but are not: medical
eponyms used as such ("Babinski positive", "Murphy sign", "Glasgow coma scale"), and race or
ethnicity words. Only recognisers' guesses are vetoed, never a declared identifier: a patient
named Murphy is still found by the declared-identifier matcher (label PATIENT)."""
from __future__ import annotations

import re
from functools import lru_cache

from ..domain import Span
from . import vocab
from .cues import STOP, TITLES
from .drugs import is_drug_shaped

# The clinical word that follows an eponym and makes it one.
EPONYM_HEADS = frozenset("""sign signs test tests scale score scores reflex reflexes syndrome disease disease's
maneuver manoeuvre manoeuvres maneuvers catheter catheters tube tubes criteria classification stage staging
procedure operation repair fracture node nodes position positive negative equation formula law phenomenon
triad tetrad cell cells body bodies point line lines hernia ulcer palsy palsies block coma""".split())
def _named(text: str, m: re.Match[str]) -> bool:
    """A title, a given name or an initial right before the word makes it a person's name."""
    prev = re.search(r"([^\W\d_][\w']*)\.?\s+$", text[max(0, m.start() - 30):m.start()])
    if not prev:
        return False
    raw = prev.group(1)
    w = raw.lower()
    return w in TITLES or (w in vocab.first_names() and raw[:1].isupper() and not raw.isupper()) \
        or (len(w) == 1 and raw.isupper())


@lru_cache(maxsize=1)
def _regions() -> frozenset[str]:
    return frozenset(n.lower() for f in ("us_states.txt", "countries.txt", "regions.txt", "world_cities.txt")
                     for n in vocab.lines(f) if " " not in n)


# The clinical words that make the capitalised word before them an eponym, whatever the word
# ("Graves disease", "Stanford type A"); a declared patient of that name is still found.
_NAMING_HEADS = frozenset("""disease disease's syndrome sign criteria classification scale score grade type stage
reflex maneuver manoeuvre phenomenon triad palsy""".split())
_FINDING_WORDS = frozenset("positive negative pos neg + - equivocal upgoing downgoing bilateral".split())
_WORD = re.compile(r"[^\W\d_][\w'\-]*")
_SOFT = frozenset({"NAME", "LOCATION", "INSTITUTION"})


def veto(text: str, spans: list[Span]) -> list[Span]:
    eponyms = vocab.eponyms()
    allow = vocab.allow_terms()
    capitals = _mostly_capitals(text)
    out = []
    for s in spans:
        if s.label in _SOFT:
            words = [m for m in _WORD.finditer(text, s.start, s.end)]
            if words and s.label == "INSTITUTION" and all(m.group().lower() in _DEPARTMENT_WORDS for m in words):
                continue  # "Cardiology", "Nephrology clinic": a service, not an institution
            # A clinical word is judged alone or with its grade ("Garden IV"), never as part of a
            # longer name ("Bioscience Life Technologies" is a company).
            single = len(words) == 1 or (len(words) == 2 and bool(_ROMAN.fullmatch(words[1].group())))
            if words and all(_not_identifying(text, m, s.label, eponyms, allow) or
                             (single and _clinical_word(text, m, s.label, capitals)) for m in words):
                continue
        out.append(s)
    return out


# A department or service of any hospital names no institution (Safe Harbor lists none of them);
# words that also name facilities ("Heart", "Rehab") are not among them (measured on the gold).
_DEPARTMENT_WORDS = frozenset("""cardiology nephrology endocrinology neurology oncology hematology haematology
gastroenterology pulmonology rheumatology urology orthopaedic orthopaedics orthopedic orthopedics dermatology
ophthalmology psychiatry radiology pathology anticoagulation obstetrics gynecology gynaecology pediatrics
paediatrics geriatrics otolaryngology neurosurgery cardiothoracic hepatology immunology electrophysiology
clinic service department dept""".split())
# Units written after a number ("28 mmHg", "6 HU", "0.4 mIU/L"): a measurement, never a person.
_UNITS = frozenset("""mmhg miu hu bpm meq mcg iu ml mg kg cm mm ms sec mosm mmol umol nmol pmol ng pg ul fl dl
mcl gy msv mbq mci cgy kpa""".split())
# What follows an eponym of a classification or a structure ("Garden IV", "Forrest IIa",
# "Gleason 4+4", "Morison's pouch", "Auer rods", "Hashimoto thyroiditis", "Fleischner criteria").
_CLASSIFIER = re.compile(r"(?i)^[\s'’s-]*(?:(?:(?:ii|iii|iv|vi{1,3})[abc]?|[iv][abc])\b(?!\.)|\d+\s*\+\s*\d+|"
    r"[0-9]+[a-c]?\b(?=\s*(?:grade|class|type|score|stage|,|\.|\)))|"
                         r"(?:pouch|rods?|bodies|body|society|criteria|guidelines?|classification|score|grade|class|"
                         r"stage|"
                         r"type|sign|method|equation|formula|fracture|view|position|maneuver|test|scale|index|"
                         r"\w+itis|\w+osis|\w+oma|\w+pathy)\b)")
_MONTHS = frozenset("jan feb mar apr may jun jul aug sep sept oct nov dec".split())
_ROMAN = re.compile(r"(?:I{1,3}|IV|VI{0,3})[abc]?")
_EPONYM_BEFORE = frozenset("biplane modified positive negative".split())


def _mostly_capitals(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isupper() for c in letters) > 0.6 * len(letters)


def _clinical_word(text: str, m: re.Match[str], label: str, capitals: bool) -> bool:
    """A word the clinical text uses as such, by its class and its context, not by a list of
    words seen in a corpus: a unit after a number, a grade ("IIa"), and for a word read as a
    person's name: a medical word that is no census name ("venogram"), one that is a dictionary
    word in lower case and no given name ("fossa", "dural"), a heading ("Labrum:"), an
    abbreviation in capitals inside mixed-case text that is no given name ("AKI"), an eponym of
    a classification ("Garden IV", "Gleason 4+4", "Auer rods"). Measured on the de-identification
    gold (bench/deid_cv.py): each rule kept only where it removed no gold identifier. A declared
    identifier is never vetoed (label PATIENT)."""
    raw = m.group()
    w = raw.lower().rstrip("'’").removesuffix("'s").removesuffix("’s")
    before = text[max(0, m.start() - 12):m.start()]
    if w in _UNITS and re.search(r"\d\s*$", before):
        return True
    if label in ("NAME", "LOCATION") and len(w) >= 2 and _sentence_adjective(text, m, w) and not _named(text, m):
        return True  # "Young woman with...", "Green sputum": an ordinary word that opens a sentence
    if label != "NAME":
        return False
    if raw == "I" and re.match(r" [a-z]", text[m.end():m.end() + 2]) and not _named(text, m):
        return True  # the pronoun: "I discussed", "I saw"
    if len(w) < 2:
        return False
    if _scored_compound(text, m):
        return True  # "LI-RADS 3", "CAD-RADS 4": a grading system, not a surname
    given = w in vocab.first_names()
    census = given or w in vocab.last_names()
    prev = before.split()[-1] if before.split() else ""
    if _ROMAN.fullmatch(raw) and len(raw) >= 2 and prev[:1].isupper() and prev.lower().rstrip(".") not in TITLES:
        return True  # "Forrest IIa", "Garden IV": a grade, never a name
    if w in _MONTHS or re.search(r"(?i)\b(?:dr|mr|mrs|ms|miss|prof|nurse|rn)\.?\s+[A-Z][\w'-]*\s+$",
                                 text[max(0, m.start() - 30):m.start()]):
        return False  # "sept."; "Dr. Van Leeuwen": a title two words back still makes a name
    if _named(text, m):
        # "MR VENOGRAM" reads as a title and a name; a medical word that is no census name is
        # the modality's object all the same. After an unambiguous title ("Dr. Lindqvist") it
        # is a person, whatever medical dictionary holds the word.
        ambiguous = re.search(r"(?:^|[^\w.])(?:MR|MS|mr|ms)\s+$", text[max(0, m.start() - 6):m.start()])
        return bool(ambiguous) and not census and w in vocab.medical()
    if prev.lower() == "per" and w in vocab.eponyms() and not given:
        return True  # "per Fleischner": a guideline by its eponym ("per Warren" is a person)
    if raw[:1].isupper() and (_CLASSIFIER.match(text[m.end():m.end() + 30]) or prev.lower() in _EPONYM_BEFORE):
        return True  # "Gleason 4+4", "Forrest IIa", "Auer rods", "biplane Simpson": an eponym of a grade or a structure
    return not given and _medical_not_name(text, m, raw, w, census, capitals)


def _medical_not_name(text: str, m: re.Match[str], raw: str, w: str, census: bool, capitals: bool) -> bool:
    """The last of _clinical_word's tests, for a word no given name: a medical word by its
    dictionaries and how it is written."""
    if not census and w in vocab.medical():
        return True
    if len(w) >= 3 and raw.islower() and w in vocab.medical() and w in vocab.english_extended():
        return True
    at_line_start = not text[:m.start()].rsplit("\n", 1)[-1].strip()
    if raw[:1].isupper() and w in vocab.medical() and text[m.end():m.end() + 1] == ":" and at_line_start:
        return True  # "Labrum: no tear": a heading
    return raw.isupper() and 2 <= len(raw) <= 6 and not capitals and w in vocab.abbreviations()


_DOSE_AFTER = re.compile(r"(?i)[ \t]*(?:\d|(?:po|iv|im|sc|sq|pr|prn|drip|gtt|mg|mcg|daily|bid|tid|qid|qd|qhs|"
                         r"held|dose|tabs?|tablets?|caps?|patch|inhaler|nebs?)\b)")
_COMPOUND = re.compile(r"[A-Za-z0-9]*(?:-[A-Za-z0-9]+)+")
_GRADE_AFTER = re.compile(r"[ \t]?(?:\d|(?:I{1,3}|IV|V)\b|[a-z]{0,2}\d)")


def _scored_compound(text: str, m: re.Match[str]) -> bool:
    """A hyphenated capitals compound followed by its grade ("LI-RADS 3", "BI-RADS 4A")."""
    start = m.start()
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "-"):
        start -= 1
    c = _COMPOUND.match(text, start)
    if c is None or c.end() < m.end() or "-" not in c.group():
        return False
    parts = c.group().split("-")
    return (sum(p.isupper() and len(p) >= 2 for p in parts) >= 1 and any(p.isupper() and len(p) >= 3 for p in parts)
            and bool(_GRADE_AFTER.match(text, c.end())))


# Verbs and words that follow a person's name at the start of a sentence ("Smith states").
_AFTER_A_PERSON = STOP | frozenset("""states stated says said reports reported called calls seen saw notes noted
denies denied agrees agreed aware presents presented complains complained feels felt wants wishes asked
visited tolerated remains continues underwent""".split())


def _sentence_adjective(text: str, m: re.Match[str], w: str) -> bool:
    """A capitalised English word that opens a sentence and is followed by an ordinary lower-case
    word that no person's name takes ("Young woman", "Brown sputum"); "Smith states" and "Wood
    was" stay names."""
    raw = m.group()
    if not (raw[:1].isupper() and raw[1:].islower()) or w not in vocab.english():
        return False
    lead = text[max(0, m.start() - 80):m.start()].rstrip(" \t")
    if lead and lead[-1] not in ".!?\n:":
        return False
    nxt = re.match(r"[ \t]+([a-z][a-z\-]+)\b", text[m.end():m.end() + 30])
    return nxt is not None and nxt.group(1) in vocab.english() and nxt.group(1) not in _AFTER_A_PERSON


def _not_identifying(text: str, m: re.Match[str], label: str, eponyms: frozenset[str],
                     allow: frozenset[str]) -> bool:
    raw = m.group()
    w = raw.lower()
    if _named(text, m):
        return False  # "Dr. Murphy", "Art White", "R. Glasgow": a person after all
    if label == "NAME" and 2 <= len(raw) <= 5 and sum(c.isupper() for c in raw) >= 2 and w in vocab.abbreviations() \
            and w not in vocab.last_names() and w not in vocab.first_names():
        return True  # "GCS 15", "QTc": a score, not a person (as a place, "to BMC", it may be a hospital)
    core = w[:-2] if w.endswith("'s") else w.rstrip("'s") if w.endswith("s'") else w
    if core in allow:
        return True
    if is_drug_shaped(core) and (core in vocab.medical() or core not in vocab.last_names()):
        return True  # "apixaban", "ticagrelor": a drug by its INN stem, no census surname
    if core in vocab.drugs() and (core not in vocab.last_names() and core not in vocab.first_names()
                                  or raw.islower() or _DOSE_AFTER.match(text, m.end())):
        return True  # "Brilinta", "Xarelto"; a drug that is also a census name only with its dose ("Allegra 180 mg")
    nxt = _WORD.search(text, m.end(), min(len(text), m.end() + 40))
    if raw[:1].isupper() and nxt and nxt.group().lower() in _NAMING_HEADS \
            and text[m.end():nxt.start()].strip(" -,'") == "":
        return True  # "Graves disease", "Nottingham grade": an eponym by the word it names
    if core not in eponyms and core.rstrip("s") not in eponyms:
        return False
    # An eponym is one before its clinical head word ("Murphy sign", "Glasgow coma scale") or
    # after a finding word ("positive Babinski").
    nxt = _WORD.search(text, m.end(), min(len(text), m.end() + 40))
    if nxt and nxt.group().lower() in EPONYM_HEADS and text[m.end():nxt.start()].strip(" -,'") == "":
        return True
    before = text[max(0, m.start() - 12):m.start()].lower().split()
    if before and before[-1].strip(",:;") in _FINDING_WORDS:
        return True
    if core in vocab.places()[0] or core in _regions():
        return False  # "Maryland", "Seattle"
    # Alone, only an eponym that is no census name at all ("Homans", "Trendelenburg").
    return core not in vocab.last_names() and core not in vocab.first_names()
