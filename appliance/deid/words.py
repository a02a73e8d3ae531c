"""One note as the dictionary recognisers see it: its words (start, end, core form), the label
each has so far, and the questions every recogniser asks about a word and its neighbours."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from . import vocab
from .cues import CUES, HOSPITAL_PHRASES, HOSPITAL_WORDS, STOP

# Letters of any script ("Červinková", "Järvilehto"); "300's" and "120s" hold no word.
_WORD = re.compile(r"(?<![0-9'])[^\W\d_](?:[^\W\d_]|')*")
_ACRONYM_PLURAL = re.compile(r"[A-Z]{2,}[a-z]{1,2}$")


@lru_cache(maxsize=131072)
def unknown(w: str) -> bool:
    """A word no vocabulary knows: in these notes mostly a name or a place."""
    # An apostrophe only as in O'Brien or D'Angelo; "rec'd" is an abbreviation.
    if "'" in w and not (w[1:2] == "'" and w[2:].isalpha()):
        return False
    known = (vocab.common(), STOP, CUES, vocab.first_names(), vocab.last_names(), vocab.english_extended(),
             vocab.medical(), vocab.allow_terms())
    return len(w) >= 2 and w.replace("'", "").isalpha() and not any(w in words for words in known) \
        and not _misspelt_word(w)


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


def is_namey(w: str) -> bool:
    return (w in vocab.first_names() or w in vocab.last_names()) and w not in vocab.common()


def _core(word: str) -> str:
    w = word.lower()
    return w[:-2] if w.endswith("'s") else w.strip("'")


@dataclass
class Note:
    """The words of one note and their labels (mutable: recognisers label in turn)."""
    text: str
    toks: list[tuple[int, int, str]] = field(init=False)
    n: int = field(init=False)
    label: list[str | None] = field(init=False)
    mixed: bool = field(init=False)  # mixed case: capitals can be evidence
    cased: bool = field(init=False)  # the writer capitalises names (Title-case words are common)
    prose: bool = field(init=False)  # mixed case and almost no clinical shorthand

    def __post_init__(self) -> None:
        text = self.text
        self.toks = [(m.start(), m.end(), _core(m.group())) for m in _WORD.finditer(text)]
        self.n = n = len(self.toks)
        self.label = [None] * n
        letters = sum(map(str.isalpha, text))  # map: a C loop, several times faster than a generator
        self.mixed = sum(map(str.islower, text)) > 0.3 * max(letters, 1)
        titled = sum(1 for a, b, _w in self.toks if text[a].isupper() and not text[a:b].isupper())
        self.cased = self.mixed and titled >= 0.08 * max(n, 1)
        clinical = vocab.clinical()
        self.prose = self.mixed and sum(1 for t in self.toks if t[2] in clinical) < 0.05 * max(n, 1)

    def w(self, i: int) -> str:
        return self.toks[i][2]

    def raw(self, i: int) -> str:
        return self.text[self.toks[i][0]:self.toks[i][1]]

    def after(self, i: int, k: int = 1) -> str:
        """The k characters right after word i."""
        return self.text[self.toks[i][1]:self.toks[i][1] + k]

    def gap(self, i: int) -> str:
        """The text between word i and word i+1."""
        return self.text[self.toks[i][1]:self.toks[i + 1][0]] if i + 1 < self.n else ""

    def between(self, i: int, j: int) -> str:
        """The text from the end of word i to the start of word j."""
        return self.text[self.toks[i][1]:self.toks[j][0]]

    def adjacent(self, i: int) -> bool:
        """Words i and i+1 are neighbours in one phrase."""
        g = self.gap(i)
        return len(g) <= 3 and "\n" not in g and all(c in " ,.-:(" for c in g)

    def title_case(self, i: int) -> bool:
        raw = self.raw(i)
        # "PVCs", "ABGs", "MAEs" are acronyms in the plural, not capitalised words
        return raw[0].isupper() and not raw.isupper() and not _ACRONYM_PLURAL.match(raw)

    def upper(self, i: int) -> bool:
        return self.raw(i).isupper()

    def word_start(self, i: int) -> bool:
        """Not the "m" of "4:30am." or of "mcg/k/m."."""
        return self.toks[i][0] == 0 or self.text[self.toks[i][0] - 1] in " \t\n([\"'-,;:"

    def initial(self, i: int) -> bool:
        """"Q. LANDER", "q. lander": one letter and a full stop."""
        return len(self.raw(i)) == 1 and self.after(i) == "." and self.word_start(i)

    def name_like(self, i: int) -> bool:
        """Could be part of a proper name: not an ordinary word, or capitalised in mixed text."""
        w = self.w(i)
        pair = (self.w(i - 1), w) if i > 0 else ("", w)
        nxt = (w, self.w(i + 1)) if i + 1 < self.n else (w, "")
        return (unknown(w) or is_namey(w) or w in vocab.places()[0] or w in HOSPITAL_WORDS
                or pair in HOSPITAL_PHRASES or nxt in HOSPITAL_PHRASES or (self.mixed and self.title_case(i)))

    def sentence_start(self, i: int) -> bool:
        before = self.text[max(0, self.toks[i][0] - 3):self.toks[i][0]]
        if i > 0 and len(self.w(i - 1)) == 1 and before.rstrip().endswith("."):
            return False  # the full stop of an initial ("Ella H. Snider") ends no sentence
        return i == 0 or any(c in before for c in ".!?:\n")

    def title_run(self, i: int) -> bool:
        """An English word inside a Title Case heading ("Respiratory Care Note  Patient ..."):
        there capitals mark the heading, not a name. A given name before it still counts
        ("Brad Key")."""
        eng = vocab.english()
        if i == 0 or self.w(i) not in eng or "\n" in self.gap(i - 1):
            return False
        prev, raw = self.w(i - 1), self.raw(i - 1)
        return raw[:1].isupper() and prev in eng and prev not in vocab.first_names() and prev not in STOP
