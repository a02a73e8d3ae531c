"""Dictionary and context recognisers for names and places that no header declares.

Evidence, strongest first:
- a cue: a title ("Dr", "Mrs") or a relation ("son", "wife", "proxy") right before a word;
- a suffix: "Holy Cross Hospital", "Kessler Rehab" (the words before an institution word);
- a movement phrase: "transferred to GH", "lives in catonsville" (a word no vocabulary knows);
- the dictionaries: census names and US places that are not English or clinical words.
A found name grows over neighbouring name words and initials ("ROBERT V. DEGIORGIO")."""
from __future__ import annotations

import re
from functools import lru_cache

from ..domain import Span
from . import vocab
from .cues import (
    CREDENTIALS, CUES, DOCTOR_TITLES, HOSPITAL_PHRASES, HOSPITAL_WORDS, INSTITUTION_WORDS, MOVEMENT, MOVERS,
    RELATIONS, SAINTS, SERVICES, STOP, TITLES, CAPITALISED_WORDS, INSTITUTION_QUALIFIER, NAMING_CUES,
    PERSON_VERBS, STATES, STRONG_NAMING_CUES,
)

_PLACE_POSTCODE = re.compile(r"\b(?:in|at|of)\s+(?:(?:[^\W\d_][\w'\-]*|de|da|do|del|la|le|di)\s+){1,4}"
                             r"(?P<v>\d{3,5}(?:-\d{3,4})?)\b(?![.,]\d)")
# Letters of any script ("Červinková", "Järvilehto"); "300's" and "120s" hold no word.
_ACRONYM_PLURAL = re.compile(r"[A-Z]{2,}[a-z]{1,2}$")
DETERMINERS = frozenset("the a an this that these those his her their our your my its no any each every".split())
_WORD = re.compile(r"(?<![0-9'])[^\W\d_](?:[^\W\d_]|')*")


@lru_cache(maxsize=131072)
def _unknown(w: str) -> bool:
    """A word no vocabulary knows: in these notes mostly a name or a place."""
    # An apostrophe only as in O'Brien or D'Angelo; "rec'd" is an abbreviation.
    if "'" in w and not (w[1:2] == "'" and w[2:].isalpha()):
        return False
    return len(w) >= 2 and w.replace("'", "").isalpha() and w not in vocab.common() and w not in STOP and w not in CUES \
        and w not in vocab.first_names() and w not in vocab.last_names() and w not in vocab.english_extended() \
        and w not in vocab.medical() and w not in vocab.allow_terms() and not _misspelt_word(w)


@lru_cache(maxsize=65536)
def _misspelt_word(w: str) -> bool:
    """One edit (delete, insert, substitute, transpose) from a common English word: a typo
    ("recieved", "stabel"), not a name. Only for longer words, where names rarely collide."""
    if len(w) < 6:
        return False
    eng = vocab.english()
    letters = "abcdefghijklmnopqrstuvwxyz"
    for i in range(len(w) + 1):
        a, b = w[:i], w[i:]
        if b and a + b[1:] in eng:
            return True
        if len(b) > 1 and a + b[1] + b[0] + b[2:] in eng:
            return True
        for c in letters:
            if b and a + c + b[1:] in eng:
                return True
            if a + c + b in eng:
                return True
    return False


def _is_namey(w: str) -> bool:
    return (w in vocab.first_names() or w in vocab.last_names()) and w not in vocab.common()


def _core(word: str) -> str:
    w = word.lower()
    return w[:-2] if w.endswith("'s") else w.strip("'")


def dictionary_spans(text: str) -> tuple[list[Span], bool]:
    """(spans, prose): prose is mixed-case text with almost no clinical shorthand (letters,
    chat, free text), where capitalisation can be trusted as evidence of a name."""
    toks = [(m.start(), m.end(), _core(m.group())) for m in _WORD.finditer(text)]
    n = len(toks)
    label: list[str | None] = [None] * n
    common = vocab.common()
    single_places, multi_places = vocab.places()
    letters = sum(map(str.isalpha, text))  # map: a C loop, several times faster than a generator
    mixed = sum(map(str.islower, text)) > 0.3 * max(letters, 1)
    # The writer uses capitals for names: Title-case words are common, and so are lower-case ones
    titled = sum(1 for a, b, _w in toks if text[a].isupper() and not text[a:b].isupper())
    cased = mixed and titled >= 0.08 * max(n, 1)

    def gap(i: int) -> str:  # text between token i and i+1
        return text[toks[i][1]:toks[i + 1][0]] if i + 1 < n else ""

    def _title_case(i: int) -> bool:
        raw = text[toks[i][0]:toks[i][1]]
        # "PVCs", "ABGs", "MAEs" are acronyms in the plural, not capitalised words
        return raw[0].isupper() and not raw.isupper() and not _ACRONYM_PLURAL.match(raw)

    def _initial(i: int) -> bool:  # "Q. LANDER", "q. lander": one letter and a full stop
        raw = text[toks[i][0]:toks[i][1]]
        return len(raw) == 1 and text[toks[i][1]:toks[i][1] + 1] == "." and _word_start(i)

    def _word_start(i: int) -> bool:  # not the "m" of "4:30am." or of "mcg/k/m."
        return toks[i][0] == 0 or text[toks[i][0] - 1] in " \t\n([\"'-,;:"

    def _name_like(i: int) -> bool:
        """Could be part of a proper name: not an ordinary word, or capitalised in mixed text."""
        w = toks[i][2]
        pair = (toks[i - 1][2], w) if i > 0 else ("", w)
        nxt = (w, toks[i + 1][2]) if i + 1 < n else (w, "")
        return (_unknown(w) or _is_namey(w) or w in single_places or w in HOSPITAL_WORDS
                or pair in HOSPITAL_PHRASES or nxt in HOSPITAL_PHRASES or (mixed and _title_case(i)))

    def _upper(i: int) -> bool:
        return text[toks[i][0]:toks[i][1]].isupper()

    def _sentence_start(i: int) -> bool:
        before = text[max(0, toks[i][0] - 3):toks[i][0]]
        if i > 0 and len(toks[i - 1][2]) == 1 and before.rstrip().endswith("."):
            return False  # the full stop of an initial ("Ella H. Snider") ends no sentence
        return i == 0 or any(c in before for c in ".!?:\n")

    def _title_run(i: int) -> bool:
        """An English word inside a Title Case heading ("Respiratory Care Note  Patient ..."):
        there capitals mark the heading, not a name. A given name before it still counts
        ("Brad Key")."""
        eng = vocab.english()
        if i == 0 or toks[i][2] not in eng or "\n" in gap(i - 1):
            return False
        prev, raw = toks[i - 1][2], text[toks[i - 1][0]:toks[i - 1][1]]
        return raw[:1].isupper() and prev in eng and prev not in vocab.first_names() and prev not in STOP

    def adjacent(i: int) -> bool:  # i and i+1 are neighbours in one phrase
        g = gap(i)
        return len(g) <= 3 and "\n" not in g and all(c in " ,.-:(" for c in g)

    for i, (_s, _e, w) in enumerate(toks):
        if w in TITLES and i + 1 < n and adjacent(i):
            j = i + 1
            cand = toks[j][2]
            # "MS:" is also mental status: "ms" needs its full stop or a name-like word.
            lenient = w in DOCTOR_TITLES or text[toks[i][1]:toks[i][1] + 1] == "."
            if cand not in STOP and (cand not in vocab.clinical() or _title_case(j)) and \
                    (lenient or _is_namey(cand) or _unknown(cand) or cand in vocab.first_names()):
                label[j] = "NAME"
                # "Drs X and Y", "dr x, dr y"
                if j + 2 < n and toks[j + 1][2] == "and" and toks[j + 2][2] not in STOP:
                    label[j + 2] = "NAME"
        if w in RELATIONS and i > 0 and text[toks[i - 1][1]:toks[i][0]].strip() in ("(", ",", "-", "- ("):
            # "Hank Przybylo (son)": the one or two words before the relation
            for k in (i - 1, i - 2):
                if k < 0 or toks[k][2] in STOP or toks[k][2] in CUES or toks[k][2] in vocab.clinical():
                    break
                if not (_unknown(toks[k][2]) or _is_namey(toks[k][2]) or toks[k][2] in vocab.first_names()):
                    break
                label[k] = "NAME"
                if k > 0 and not adjacent(k - 1):
                    break
        if w in RELATIONS and i + 1 < n and adjacent(i):
            j = i + 1
            cand = toks[j][2]
            while j < n and cand not in STOP and cand not in CUES and len(cand) > 1 and \
                    (cand not in common or _is_namey(cand) or cand in vocab.first_names()):
                label[j] = "NAME"
                # a list of names: "Sons Smokey, Morris and Roger"
                if j + 2 < n and (gap(j) == ", " or toks[j + 1][2] == "and") and adjacent(j):
                    j = j + 2 if toks[j + 1][2] == "and" else j + 1
                    cand = toks[j][2]
                    if cand in vocab.first_names() and cand not in STOP:
                        continue
                break
        elif (w in INSTITUTION_WORDS or w == "home") and i > 0:
            # Words before "Hospital"/"Rehab" name the institution, back to a stop word.
            j = i - 1
            if w in INSTITUTION_QUALIFIER:
                if toks[j][2] not in INSTITUTION_QUALIFIER[w]:
                    continue
                j -= 1
            while j >= 0 and i - j <= 3 and toks[j][2] not in STOP and toks[j][2] not in INSTITUTION_WORDS \
                    and toks[j][2] not in SERVICES and text[toks[j][1]:toks[j + 1][0]] in (" ", "-", ". ") \
                    and toks[j][2] not in vocab.clinical() and _name_like(j):
                label[j] = "INSTITUTION"
                j -= 1
            if w in ("rehab", "rehabilitation") and j < i - 1:
                label[i] = "INSTITUTION"  # "Kessler Rehab" is a name; "cardiac rehab" is a service
        elif w in MOVEMENT and i + 1 < n and adjacent(i):
            if toks[i + 1][2] == "the" and i + 2 < n and adjacent(i + 1):
                i_next = i + 2  # "admitted to the GH"
            else:
                i_next = i + 1
            cand = toks[i_next][2]
            moved = i > 0 and toks[i - 1][2] in MOVERS
            # "to" also makes infinitives ("to diurese"): an unknown word after it needs a mover.
            # Where the writer capitalises names, a lower-case word after "from" is no place.
            lowered = cased and text[toks[i_next][0]].islower()
            if not lowered and len(cand) >= 2 and ((_unknown(cand) and (moved or w != "to"))
                                   or (moved and (_is_namey(cand) or cand in single_places))
                                   or cand in HOSPITAL_WORDS
                                   or (moved and cand in STATES and _upper(i_next) and cand not in common)):
                label[i_next] = label[i_next] or "LOCATION"
        elif w in CREDENTIALS and i + 1 < n and adjacent(i) and toks[i + 1][2] in vocab.first_names() \
                and toks[i + 1][2] not in STOP and toks[i + 1][2] not in vocab.clinical():
            label[i + 1] = "NAME"  # "NP Carol", "per RN Mary"
        elif w in CREDENTIALS and i > 0 and adjacent(i - 1):
            # "Patricia Nolan, RN", "Stord-Painter MD": the name run before a credential.
            run = []
            j = i - 1
            while j >= 0 and len(run) < 3 and (toks[j][2] not in STOP or _initial(j)) \
                    and toks[j][2] not in CREDENTIALS \
                    and (j == i - 1 or adjacent(j)) and "\n" not in text[toks[j][1]:toks[i][0]] \
                    and (j == i - 1 or "." not in gap(j) or _initial(j) or toks[j][2] in TITLES):
                run.append(j)
                j -= 1
            run = [k for k in run if len(toks[k][2]) > 1 or _initial(k)] \
                if all(len(toks[k][2]) > 1 or _initial(k) for k in run) else []
            if any(_unknown(toks[k][2]) or _is_namey(toks[k][2]) or len(toks[k][2]) == 1 for k in run) \
                    and any(len(toks[k][2]) > 1 for k in run):
                for k in run:
                    label[k] = "NAME"
        elif w in SAINTS and i + 1 < n and adjacent(i) and (toks[i + 1][2] in vocab.first_names() or
                                                             _initial(i + 1)) and toks[i + 1][2] not in STOP:
            label[i] = label[i + 1] = "INSTITUTION"
        elif len(w) == 1 and i + 1 < n and text[toks[i][1]:toks[i][1] + 2] == ". " and w not in ("a", "i") \
                and _word_start(i) \
                and (_is_namey(toks[i + 1][2]) or (_unknown(toks[i + 1][2]) and not _upper(i + 1))):
            label[i] = label[i + 1] = "NAME"  # "D. Phyl", "j. o'brien"
        if label[i] is None and len(w) >= 4 and _unknown(w) and re.match(r" \d(?![\d%/]|\.\d)", text[toks[i][1]:toks[i][1] + 4]):
            label[i] = "LOCATION"  # a ward or building with its floor: "Quartermain 2"
        if label[i] is None and i + 1 < n and _unknown(w) and toks[i + 1][2] in ("ew", "er", "ed") and adjacent(i):
            label[i] = "LOCATION"  # "GH EW": a hospital's emergency department
        if label[i] is None and len(w) >= 2:
            if _is_namey(w):
                label[i] = "NAME"
            elif w in single_places and w not in common:
                label[i] = "LOCATION"
    # "Daniela C Capon": a lone capital between two name words is a middle initial.
    for i in range(1, n - 1):
        raw = text[toks[i][0]:toks[i][1]]
        if label[i] is None and len(raw) == 1 and raw.isupper() and label[i - 1] == "NAME" \
                and adjacent(i - 1) and adjacent(i):
            nxt = toks[i + 1][2]
            if label[i + 1] == "NAME" or (_title_case(i + 1) and nxt not in STOP and nxt not in vocab.clinical()
                                          and (nxt in vocab.last_names() or _unknown(nxt))):
                label[i] = label[i + 1] = "NAME"
    # "Suzette and Hank": a first name joined by "and" to a name is a name too.
    for i in range(n - 2):
        if label[i] == "NAME" and toks[i + 1][2] == "and" and label[i + 2] is None \
                and toks[i + 2][2] in vocab.first_names() and toks[i + 2][2] not in STOP \
                and toks[i + 2][2] not in vocab.clinical() and toks[i][2] in vocab.first_names():
            label[i + 2] = "NAME"
    # Prose (letters, chat, free text with almost no clinical shorthand): there a capitalised
    # word no vocabulary knows is a name wherever it stands ("Asya spent a year", "Szczepańska").
    # In clinical shorthand the same shape is usually an abbreviation or a brand, so not there.
    clinical = vocab.clinical()
    prose = mixed and sum(1 for t in toks if t[2] in clinical) < 0.05 * max(n, 1)
    if prose:
        for i in range(n):
            raw = text[toks[i][0]:toks[i][1]]
            if label[i] is None and len(raw) >= 3 and raw[0].isupper() and raw[1:].islower() \
                    and _unknown(toks[i][2]):
                label[i] = "NAME"
        for i in range(n):
            raw = text[toks[i][0]:toks[i][1]]
            if label[i] is not None or not (raw[0].isupper() and raw[1:].islower()) or toks[i][2] in STOP \
                    or toks[i][2] in vocab.clinical():
                continue
            # a census name capitalised mid-sentence ("directed by Brad", "leave me Mark"), or opening a
            # sentence as the person addressed ("Warrane, can I ...")
            census = (toks[i][2] in vocab.first_names() or toks[i][2] in vocab.last_names()) \
                and toks[i][2] not in CAPITALISED_WORDS and toks[i][2] not in CUES and not _title_run(i)
            if census and (not _sentence_start(i) or text[toks[i][1]:toks[i][1] + 1] == ","):
                label[i] = "NAME"
                continue
            # a speaker in a transcript ("John: You saved my life!")
            line_start = i == 0 or "\n" in text[toks[i - 1][1]:toks[i][0]]
            if line_start and text[toks[i][1]:toks[i][1] + 1] == ":" and toks[i][2] in vocab.first_names():
                label[i] = "NAME"
            # a list of people: "Monjeau, Graves and Reed"
            elif i >= 2 and label[i - 2] == "NAME" and text[toks[i - 1][1]:toks[i][0]] == " " \
                    and toks[i - 1][2] == "and" and (toks[i][2] in vocab.last_names() or _unknown(toks[i][2])):
                label[i] = "NAME"
            elif i >= 1 and label[i - 1] == "NAME" and text[toks[i - 1][1]:toks[i][0]] == ", " \
                    and (toks[i][2] in vocab.last_names() or _unknown(toks[i][2])):
                label[i] = "NAME"
    # A capitalised unknown word right after a speech or naming cue ("says Bergqvist", "my name
    # is Csanád", "named him Timmie") or right before a verb of a person ("Asya spent a year").
    if mixed:
        for i in range(n):
            raw = text[toks[i][0]:toks[i][1]]
            if label[i] is not None or not (raw[0].isupper() and raw[1:].islower() and len(raw) >= 3) \
                    or not _unknown(toks[i][2]):
                continue
            before = " ".join(t[2] for t in toks[max(0, i - 2):i])
            after = toks[i + 1][2] if i + 1 < n else ""
            # ... but never after an article: "the Permacath is placed"
            determined = i > 0 and toks[i - 1][2] in DETERMINERS
            if any(before.endswith(c) for c in NAMING_CUES) or (after in PERSON_VERBS and not determined):
                label[i] = "NAME"
    # After "my name is", "call me", "Name:" the next words are the name, whatever they are.
    cue_ends = {c.rsplit(" ", 1)[-1] for c in STRONG_NAMING_CUES}
    for i in range(1, n):
        if toks[i - 1][2] not in cue_ends:  # cheap test first: this loop sees every word
            continue
        before = " ".join(t[2] for t in toks[max(0, i - 3):i])
        if label[i] is None and any(before.endswith(c) for c in STRONG_NAMING_CUES) and toks[i][2] not in STOP \
                and toks[i][2] not in vocab.clinical() and adjacent(i - 1):
            label[i] = "NAME"
            if i + 1 < n and adjacent(i) and label[i + 1] is None and toks[i + 1][2] not in STOP \
                    and (text[toks[i + 1][0]].isupper() or _unknown(toks[i + 1][2])):
                label[i + 1] = "NAME"
    # Two unknown capitalised words in a row, in mixed-case text, are a person's name.
    if mixed:
        for i in range(n - 1):
            if label[i] is None and label[i + 1] is None and _title_case(i) and _title_case(i + 1) \
                    and adjacent(i) and _unknown(toks[i][2]) and _unknown(toks[i + 1][2]):
                label[i] = label[i + 1] = "NAME"
    # hospital names everyone knows ("sacred heart", "holy cross") and "X Memorial"
    for i in range(n - 1):
        pair = (toks[i][2], toks[i + 1][2])
        if pair in HOSPITAL_PHRASES and adjacent(i):
            label[i] = label[i] or "INSTITUTION"
            label[i + 1] = label[i + 1] or "INSTITUTION"
        if pair[1] in HOSPITAL_WORDS and adjacent(i) and label[i] in ("INSTITUTION", "LOCATION", "NAME"):
            label[i + 1] = label[i + 1] or "INSTITUTION"
    # multi-word places ("san diego", "new york")
    for i in range(n - 1):
        for size in (2, 3):
            if i + size <= n and tuple(t[2] for t in toks[i:i + size]) in multi_places:
                for k in range(i, i + size):
                    label[k] = label[k] or "LOCATION"
    # Grow names over neighbouring name words, unknown words and initials; in mixed-case
    # text a capitalised census name counts even when it is also an English word ("Art White").
    changed = True
    while changed:
        changed = False
        for i in range(n):
            if label[i] != "NAME":
                continue
            for j in (i - 1, i + 1):
                if not 0 <= j < n or label[j] is not None:
                    continue
                a, b = (j, i) if j < i else (i, j)
                if not adjacent(a):
                    continue
                # A full stop ends the name unless it closes an initial or a title ("per Dr.
                # Vasquez. Milrinone gtt": the drug starts a new sentence).
                if "." in gap(a) and len(toks[a][2]) > 1 and toks[a][2] not in TITLES:
                    continue
                w = toks[j][2]
                raw = text[toks[j][0]:toks[j][1]]
                initial = len(w) == 1 and w not in ("a", "i") and text[toks[j][1]:toks[j][1] + 1] == "." \
                    and _word_start(j)
                if w in CUES:
                    continue
                # "Ferdinand Halfpenny": after a given name, a capitalised word is the surname
                surname_after = j > i and toks[i][2] in vocab.first_names() and mixed and _title_case(j) \
                    and _title_case(i) and w not in STOP and w not in vocab.clinical() and w.isalpha()
                if surname_after:
                    label[j] = "NAME"
                    changed = True
                    continue
                given_before = j < i and w in vocab.first_names() and w not in STOP \
                    and w not in vocab.clinical() and (_is_namey(toks[i][2]) or _unknown(toks[i][2]))
                if given_before:
                    label[j] = "NAME"
                    changed = True
                    continue
                if initial or _unknown(w) or (mixed and _title_case(j) and w not in vocab.english()
                                              and w not in STOP and w.isalpha()) or \
                        ((w in vocab.first_names() or w in vocab.last_names()) and w not in STOP
                         and w not in vocab.clinical() and (w not in vocab.english() or
                                                            (mixed and _title_case(j) and not _sentence_start(j)))):
                    label[j] = "NAME"
                    changed = True
    out = [Span(toks[i][0], toks[i][1], lab) for i, lab in enumerate(label) if lab]
    if prose:
        # Prose: "in Bjert 6091", "in Quinta de São Tiago 3610-114": a postcode after a place.
        out.extend(Span(m.start("v"), m.end("v"), "ZIP") for m in _PLACE_POSTCODE.finditer(text))
    return out, prose
