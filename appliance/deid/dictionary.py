"""Dictionary and context recognisers for names and places that no header declares.

Evidence, strongest first:
- a cue: a title ("Dr", "Mrs") or a relation ("son", "wife", "proxy") right before a word;
- a suffix: "Holy Cross Hospital", "Kessler Rehab" (the words before an institution word);
- a movement phrase: "transferred to GH", "lives in catonsville" (a word no vocabulary knows);
- the dictionaries: census names and US places that are not English or clinical words.
A found name grows over neighbouring name words and initials ("ROBERT V. DEGIORGIO").

Each piece of evidence is a named recogniser in a registry, as PII engines keep theirs: what
it looks for, the label it gives, and when it applies. WORD_RULES look at one word and its
neighbours, in order, word by word (a rule of the "cue" group stops the others of that group
for the word); NOTE_RULES then run over the whole note, in order, each seeing what the rules
before it labelled."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..domain import Span
from . import vocab
from .cues import (
    CREDENTIALS, CUES, DOCTOR_TITLES, HOSPITAL_PHRASES, HOSPITAL_WORDS, INSTITUTION_WORDS, MOVEMENT, MOVERS,
    RELATIONS, SAINTS, SERVICES, STOP, TITLES, CAPITALISED_WORDS, INSTITUTION_QUALIFIER, NAMING_CUES,
    PERSON_VERBS, STATES, STRONG_NAMING_CUES,
)
from .words import Note, is_namey, unknown

_PLACE_POSTCODE = re.compile(r"\b(?:in|at|of)\s+(?:(?:[^\W\d_][\w'\-]*|de|da|do|del|la|le|di)\s+){1,4}"
                             r"(?P<v>\d{3,5}(?:-\d{3,4})?)\b(?![.,]\d)")
DETERMINERS = frozenset("the a an this that these those his her their our your my its no any each every".split())

# Kept for the modules that import them from here.
_unknown, _is_namey = unknown, is_namey


@dataclass(frozen=True)
class WordRule:
    name: str
    label: str  # what it gives: NAME, LOCATION or INSTITUTION
    when: Callable[[Note, int], bool]  # the cue, cheap: most words have none
    apply: Callable[[Note, int], bool]  # labels; False: no further rule looks at this word
    group: str = ""  # of rules that exclude each other for one word (the first that applies)


@dataclass(frozen=True)
class NoteRule:
    name: str
    label: str
    apply: Callable[[Note], None]
    when: Callable[[Note], bool] = lambda note: True


def _done(_note: Note, _i: int) -> bool:
    return True


# -- rules on one word and its neighbours -------------------------------------------------------
def _after_title(note: Note, i: int) -> bool:
    """"Dr Smith", "Mrs. k", "Drs X and Y"."""
    w, j = note.w(i), i + 1
    cand = note.w(j)
    # "MS:" is also mental status: "ms" needs its full stop or a name-like word.
    lenient = w in DOCTOR_TITLES or note.after(i) == "."
    if cand not in STOP and (cand not in vocab.clinical() or note.title_case(j)) and \
            (lenient or is_namey(cand) or unknown(cand) or cand in vocab.first_names()):
        note.label[j] = "NAME"
        if j + 2 < note.n and note.w(j + 1) == "and" and note.w(j + 2) not in STOP:
            note.label[j + 2] = "NAME"
    return True


def _before_relation(note: Note, i: int) -> bool:
    """"Hank Przybylo (son)": the one or two words before the relation."""
    for k in (i - 1, i - 2):
        wk = note.w(k) if k >= 0 else ""
        if k < 0 or wk in STOP or wk in CUES or wk in vocab.clinical():
            break
        if not (unknown(wk) or is_namey(wk) or wk in vocab.first_names()):
            break
        note.label[k] = "NAME"
        if k > 0 and not note.adjacent(k - 1):
            break
    return True


def _after_relation(note: Note, i: int) -> bool:
    """"son Hank", a list of names: "Sons Smokey, Morris and Roger"."""
    common = vocab.common()
    j = i + 1
    cand = note.w(j)
    while j < note.n and cand not in STOP and cand not in CUES and len(cand) > 1 and \
            (cand not in common or is_namey(cand) or cand in vocab.first_names()):
        note.label[j] = "NAME"
        if j + 2 < note.n and (note.gap(j) == ", " or note.w(j + 1) == "and") and note.adjacent(j):
            j = j + 2 if note.w(j + 1) == "and" else j + 1
            cand = note.w(j)
            if cand in vocab.first_names() and cand not in STOP:
                continue
        break
    return True


def _before_institution(note: Note, i: int) -> bool:
    """Words before "Hospital"/"Rehab" name the institution, back to a stop word."""
    w, j = note.w(i), i - 1
    if w in INSTITUTION_QUALIFIER:
        if note.w(j) not in INSTITUTION_QUALIFIER[w]:
            return False
        j -= 1
    while j >= 0 and i - j <= 3 and note.w(j) not in STOP and note.w(j) not in INSTITUTION_WORDS \
            and note.w(j) not in SERVICES and note.between(j, j + 1) in (" ", "-", ". ") \
            and note.w(j) not in vocab.clinical() and note.name_like(j):
        note.label[j] = "INSTITUTION"
        j -= 1
    if w in ("rehab", "rehabilitation") and j < i - 1:
        note.label[i] = "INSTITUTION"  # "Kessler Rehab" is a name; "cardiac rehab" is a service
    return True


def _after_movement(note: Note, i: int) -> bool:
    """"transferred to GH", "admitted to the GH", "lives in catonsville"."""
    w = note.w(i)
    i_next = i + 2 if note.w(i + 1) == "the" and i + 2 < note.n and note.adjacent(i + 1) else i + 1
    cand = note.w(i_next)
    moved = i > 0 and note.w(i - 1) in MOVERS
    # "to" also makes infinitives ("to diurese"): an unknown word after it needs a mover.
    # Where the writer capitalises names, a lower-case word after "from" is no place.
    lowered = note.cased and note.text[note.toks[i_next][0]].islower()
    single_places = vocab.places()[0]
    if not lowered and len(cand) >= 2 and ((unknown(cand) and (moved or w != "to"))
                                           or (moved and (is_namey(cand) or cand in single_places))
                                           or cand in HOSPITAL_WORDS
                                           or (moved and cand in STATES and note.upper(i_next)
                                               and cand not in vocab.common())):
        note.label[i_next] = note.label[i_next] or "LOCATION"
    return True


def _given_after_credential(note: Note, i: int) -> bool:
    note.label[i + 1] = "NAME"  # "NP Carol", "per RN Mary"
    return True


def _run_before_credential(note: Note, i: int) -> bool:
    """"Patricia Nolan, RN", "Stord-Painter MD": the name run before a credential."""
    run: list[int] = []
    j = i - 1
    while j >= 0 and len(run) < 3 and (note.w(j) not in STOP or note.initial(j)) \
            and note.w(j) not in CREDENTIALS \
            and (j == i - 1 or note.adjacent(j)) and "\n" not in note.between(j, i) \
            and (j == i - 1 or "." not in note.gap(j) or note.initial(j) or note.w(j) in TITLES):
        run.append(j)
        j -= 1
    run = [k for k in run if len(note.w(k)) > 1 or note.initial(k)] \
        if all(len(note.w(k)) > 1 or note.initial(k) for k in run) else []
    if any(unknown(note.w(k)) or is_namey(note.w(k)) or len(note.w(k)) == 1 for k in run) \
            and any(len(note.w(k)) > 1 for k in run):
        for k in run:
            note.label[k] = "NAME"
    return True


def _saint(note: Note, i: int) -> bool:
    note.label[i] = note.label[i + 1] = "INSTITUTION"  # "St. Agnes", "Saint Joseph"
    return True


def _initial_pair(note: Note, i: int) -> bool:
    note.label[i] = note.label[i + 1] = "NAME"  # "D. Phyl", "j. o'brien"
    return True


def _ward_floor(note: Note, i: int) -> bool:
    note.label[i] = "LOCATION"  # a ward or building with its floor: "Quartermain 2"
    return True


def _emergency(note: Note, i: int) -> bool:
    note.label[i] = "LOCATION"  # "GH EW": a hospital's emergency department
    return True


def _dictionary(note: Note, i: int) -> bool:
    """Census names and US places that are no English or clinical word."""
    w = note.w(i)
    if is_namey(w):
        note.label[i] = "NAME"
    elif w in vocab.places()[0] and w not in vocab.common():
        note.label[i] = "LOCATION"
    return True


def _next(note: Note, i: int) -> bool:
    return i + 1 < note.n and note.adjacent(i)


WORD_RULES: tuple[WordRule, ...] = (
    WordRule("title", "NAME", lambda d, i: d.w(i) in TITLES and _next(d, i), _after_title),
    WordRule("relation_before", "NAME", lambda d, i: d.w(i) in RELATIONS and i > 0
             and d.between(i - 1, i).strip() in ("(", ",", "-", "- ("), _before_relation),
    WordRule("relation_after", "NAME", lambda d, i: d.w(i) in RELATIONS and _next(d, i), _after_relation, "cue"),
    WordRule("institution_suffix", "INSTITUTION",
             lambda d, i: (d.w(i) in INSTITUTION_WORDS or d.w(i) == "home") and i > 0, _before_institution, "cue"),
    WordRule("movement", "LOCATION", lambda d, i: d.w(i) in MOVEMENT and _next(d, i), _after_movement, "cue"),
    WordRule("credential_given_after", "NAME",
             lambda d, i: d.w(i) in CREDENTIALS and _next(d, i) and d.w(i + 1) in vocab.first_names()
             and d.w(i + 1) not in STOP and d.w(i + 1) not in vocab.clinical(), _given_after_credential, "cue"),
    WordRule("credential_run_before", "NAME", lambda d, i: d.w(i) in CREDENTIALS and i > 0 and d.adjacent(i - 1),
             _run_before_credential, "cue"),
    WordRule("saint", "INSTITUTION", lambda d, i: d.w(i) in SAINTS and _next(d, i)
             and (d.w(i + 1) in vocab.first_names() or d.initial(i + 1)) and d.w(i + 1) not in STOP, _saint, "cue"),
    WordRule("initial_pair", "NAME", lambda d, i: len(d.w(i)) == 1 and i + 1 < d.n and d.after(i, 2) == ". "
             and d.w(i) not in ("a", "i") and d.word_start(i)
             and (is_namey(d.w(i + 1)) or (unknown(d.w(i + 1)) and not d.upper(i + 1))), _initial_pair, "cue"),
    WordRule("ward_floor", "LOCATION", lambda d, i: d.label[i] is None and len(d.w(i)) >= 4 and unknown(d.w(i))
             and re.match(r" \d(?![\d%/]|\.\d)", d.after(i, 4)) is not None, _ward_floor),
    WordRule("emergency_department", "LOCATION", lambda d, i: d.label[i] is None and i + 1 < d.n
             and unknown(d.w(i)) and d.w(i + 1) in ("ew", "er", "ed") and d.adjacent(i), _emergency),
    WordRule("dictionary", "NAME", lambda d, i: d.label[i] is None and len(d.w(i)) >= 2, _dictionary),
)


def _word_rules(note: Note) -> None:
    for i in range(note.n):
        used: set[str] = set()
        for rule in WORD_RULES:
            if rule.group and rule.group in used:
                continue
            if rule.when(note, i):
                if rule.group:
                    used.add(rule.group)
                if not rule.apply(note, i):
                    break


# -- rules on the whole note, after the word rules ----------------------------------------------
def _middle_initials(note: Note) -> None:
    """"Daniela C Capon": a lone capital between two name words is a middle initial."""
    for i in range(1, note.n - 1):
        raw = note.raw(i)
        if note.label[i] is None and len(raw) == 1 and raw.isupper() and note.label[i - 1] == "NAME" \
                and note.adjacent(i - 1) and note.adjacent(i):
            nxt = note.w(i + 1)
            if note.label[i + 1] == "NAME" or (note.title_case(i + 1) and nxt not in STOP
                                               and nxt not in vocab.clinical()
                                               and (nxt in vocab.last_names() or unknown(nxt))):
                note.label[i] = note.label[i + 1] = "NAME"


def _joined_given_names(note: Note) -> None:
    """"Suzette and Hank": a first name joined by "and" to a name is a name too."""
    first = vocab.first_names()
    for i in range(note.n - 2):
        if note.label[i] == "NAME" and note.w(i + 1) == "and" and note.label[i + 2] is None \
                and note.w(i + 2) in first and note.w(i + 2) not in STOP \
                and note.w(i + 2) not in vocab.clinical() and note.w(i) in first:
            note.label[i + 2] = "NAME"


def _prose_capitalised_unknown(note: Note) -> None:
    """Prose (letters, chat, free text with almost no clinical shorthand): there a capitalised
    word no vocabulary knows is a name wherever it stands ("Asya spent a year", "Szczepańska").
    In clinical shorthand the same shape is usually an abbreviation or a brand, so not there."""
    for i in range(note.n):
        raw = note.raw(i)
        if note.label[i] is None and len(raw) >= 3 and raw[0].isupper() and raw[1:].islower() and unknown(note.w(i)):
            note.label[i] = "NAME"


def _prose_census_and_speakers(note: Note) -> None:
    """In prose: a census name capitalised mid-sentence ("directed by Brad", "leave me Mark") or
    opening a sentence as the person addressed ("Warrane, can I ..."); a transcript's speaker
    ("John: You saved my life!"); a surname after a name and "and", or after a name and a comma."""
    for i in range(note.n):
        raw, w = note.raw(i), note.w(i)
        if note.label[i] is not None or not (raw[0].isupper() and raw[1:].islower()) or w in STOP \
                or w in vocab.clinical():
            continue
        census = (w in vocab.first_names() or w in vocab.last_names()) \
            and w not in CAPITALISED_WORDS and w not in CUES and not note.title_run(i)
        if census and (not note.sentence_start(i) or note.after(i) == ","):
            note.label[i] = "NAME"
            continue
        line_start = i == 0 or "\n" in note.between(i - 1, i)
        surname_like = w in vocab.last_names() or unknown(w)
        sep = note.between(i - 1, i) if i >= 1 else ""
        if (line_start and note.after(i) == ":" and w in vocab.first_names()) \
                or (i >= 2 and note.label[i - 2] == "NAME" and sep == " " and note.w(i - 1) == "and" and surname_like) \
                or (i >= 1 and note.label[i - 1] == "NAME" and sep == ", " and surname_like):
            note.label[i] = "NAME"


def _naming_cue_neighbours(note: Note) -> None:
    """A capitalised unknown word right after a speech or naming cue ("says Bergqvist", "my name
    is Csanád", "named him Timmie") or right before a verb of a person ("Asya spent a year"),
    but never after an article ("the Permacath is placed")."""
    for i in range(note.n):
        raw = note.raw(i)
        if note.label[i] is not None or not (raw[0].isupper() and raw[1:].islower() and len(raw) >= 3) \
                or not unknown(note.w(i)):
            continue
        before = " ".join(t[2] for t in note.toks[max(0, i - 2):i])
        after = note.w(i + 1) if i + 1 < note.n else ""
        determined = i > 0 and note.w(i - 1) in DETERMINERS
        if any(before.endswith(c) for c in NAMING_CUES) or (after in PERSON_VERBS and not determined):
            note.label[i] = "NAME"


_CUE_ENDS = frozenset(c.rsplit(" ", 1)[-1] for c in STRONG_NAMING_CUES)


def _strong_naming_cues(note: Note) -> None:
    """After "my name is", "call me", "Name:" the next words are the name, whatever they are."""
    for i in range(1, note.n):
        if note.w(i - 1) not in _CUE_ENDS:  # cheap test first: this loop sees every word
            continue
        before = " ".join(t[2] for t in note.toks[max(0, i - 3):i])
        if note.label[i] is None and any(before.endswith(c) for c in STRONG_NAMING_CUES) and note.w(i) not in STOP \
                and note.w(i) not in vocab.clinical() and note.adjacent(i - 1):
            note.label[i] = "NAME"
            if i + 1 < note.n and note.adjacent(i) and note.label[i + 1] is None and note.w(i + 1) not in STOP \
                    and (note.text[note.toks[i + 1][0]].isupper() or unknown(note.w(i + 1))):
                note.label[i + 1] = "NAME"


def _unknown_pairs(note: Note) -> None:
    """Two unknown capitalised words in a row, in mixed-case text, are a person's name."""
    for i in range(note.n - 1):
        if note.label[i] is None and note.label[i + 1] is None and note.title_case(i) and note.title_case(i + 1) \
                and note.adjacent(i) and unknown(note.w(i)) and unknown(note.w(i + 1)):
            note.label[i] = note.label[i + 1] = "NAME"


def _hospital_phrases(note: Note) -> None:
    """Hospital names everyone knows ("sacred heart", "holy cross") and "X Memorial"."""
    label = note.label
    for i in range(note.n - 1):
        pair = (note.w(i), note.w(i + 1))
        if pair in HOSPITAL_PHRASES and note.adjacent(i):
            label[i] = label[i] or "INSTITUTION"
            label[i + 1] = label[i + 1] or "INSTITUTION"
        if pair[1] in HOSPITAL_WORDS and note.adjacent(i) and label[i] in ("INSTITUTION", "LOCATION", "NAME"):
            label[i + 1] = label[i + 1] or "INSTITUTION"


def _multi_word_places(note: Note) -> None:
    """"san diego", "new york"."""
    multi_places = vocab.places()[1]
    for i in range(note.n - 1):
        for size in (2, 3):
            if i + size <= note.n and tuple(t[2] for t in note.toks[i:i + size]) in multi_places:
                for k in range(i, i + size):
                    note.label[k] = note.label[k] or "LOCATION"


def _grows(note: Note, i: int, j: int) -> bool:
    """Does the name at word i take in its neighbour j?"""
    a = min(i, j)
    if not note.adjacent(a):
        return False
    # A full stop ends the name unless it closes an initial or a title ("per Dr. Vasquez.
    # Milrinone gtt": the drug starts a new sentence).
    if "." in note.gap(a) and len(note.w(a)) > 1 and note.w(a) not in TITLES:
        return False
    w = note.w(j)
    if w in CUES:
        return False
    # "Ferdinand Halfpenny": after a given name, a capitalised word is the surname
    if j > i and note.w(i) in vocab.first_names() and note.mixed and note.title_case(j) \
            and note.title_case(i) and w not in STOP and w not in vocab.clinical() and w.isalpha():
        return True
    if j < i and w in vocab.first_names() and w not in STOP \
            and w not in vocab.clinical() and (is_namey(note.w(i)) or unknown(note.w(i))):
        return True  # a given name before a name
    initial = len(w) == 1 and w not in ("a", "i") and note.after(j) == "." and note.word_start(j)
    census = (w in vocab.first_names() or w in vocab.last_names()) and w not in STOP and w not in vocab.clinical()
    return initial or unknown(w) or (note.mixed and note.title_case(j) and w not in vocab.english()
                                     and w not in STOP and w.isalpha()) or \
        (census and (w not in vocab.english() or (note.mixed and note.title_case(j) and not note.sentence_start(j))))


def _grow_names(note: Note) -> None:
    """Grow names over neighbouring name words, unknown words and initials; in mixed-case text a
    capitalised census name counts even when it is also an English word ("Art White")."""
    changed = True
    while changed:
        changed = False
        for i in range(note.n):
            if note.label[i] != "NAME":
                continue
            for j in (i - 1, i + 1):
                if 0 <= j < note.n and note.label[j] is None and _grows(note, i, j):
                    note.label[j] = "NAME"
                    changed = True


NOTE_RULES: tuple[NoteRule, ...] = (
    NoteRule("middle_initial", "NAME", _middle_initials),
    NoteRule("joined_given_names", "NAME", _joined_given_names),
    NoteRule("prose_capitalised_unknown", "NAME", _prose_capitalised_unknown, lambda note: note.prose),
    NoteRule("prose_census_and_speakers", "NAME", _prose_census_and_speakers, lambda note: note.prose),
    NoteRule("naming_cue_neighbours", "NAME", _naming_cue_neighbours, lambda note: note.mixed),
    NoteRule("strong_naming_cues", "NAME", _strong_naming_cues),
    NoteRule("unknown_pairs", "NAME", _unknown_pairs, lambda note: note.mixed),
    NoteRule("hospital_phrases", "INSTITUTION", _hospital_phrases),
    NoteRule("multi_word_places", "LOCATION", _multi_word_places),
    NoteRule("grow_names", "NAME", _grow_names),
)


def dictionary_spans(text: str) -> tuple[list[Span], bool]:
    """(spans, prose): prose is mixed-case text with almost no clinical shorthand (letters,
    chat, free text), where capitalisation can be trusted as evidence of a name."""
    note = Note(text)
    _word_rules(note)
    for rule in NOTE_RULES:
        if rule.when(note):
            rule.apply(note)
    out = [Span(note.toks[i][0], note.toks[i][1], lab) for i, lab in enumerate(note.label) if lab]
    if note.prose:
        # Prose: "in Bjert 6091", "in Quinta de São Tiago 3610-114": a postcode after a place.
        out.extend(Span(m.start("v"), m.end("v"), "ZIP") for m in _PLACE_POSTCODE.finditer(text))
    return out, note.prose
