"""The learned tagger at run time: a CRFsuite model shipped in the package, checked against
its pinned SHA-256 before it is opened. It is never trained here (see `train.py`)."""
from __future__ import annotations

import hashlib
import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pycrfsuite

from ...domain import Span
from ...errors import ModelIntegrityError
from .. import vocab
from ..cues import CREDENTIALS, RELATIONS, STOP, TITLES
from ..words import _misspelt_word
from .features import caps_document, featurize, rule_labels, tokens

MODEL = "deid_crf.model"
# A token is PHI when the model gives "O" less than this probability: recall matters more
# than precision (a missed name is a breach, an extra redaction an annoyance). Chosen by
# cross-validation (bench/deid_cv.py --threshold).
THRESHOLD = 0.5

# Tokens tagged in one CRFsuite call. Features cost about 2 KB a token in Python and as much
# again in CRFsuite, so a 2 MB note tagged whole held 2 GB; in windows of this size, cut at line
# ends, memory stays flat whatever the length (a window's edge only loses the features of the
# two tokens across a line break, which the model weighs little).
WINDOW = 2000


# What the tagger may add: words of names and places, where dictionaries and cues run out.
WORD_LABELS = frozenset({"NAME", "LOCATION", "ADDRESS"})


def _data(name: str) -> Path:
    return Path(str(resources.files("appliance.deid").joinpath(f"data/{name}")))


class Tagger:
    def __init__(self, path: Path, sha256: str | None, threshold: float = THRESHOLD) -> None:
        if sha256 is not None:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != sha256:
                raise ModelIntegrityError(
                    f"de-identification model {path} has SHA-256 {digest}, expected {sha256}: "
                    "reinstall the package (the file was changed or damaged)")
        self._tagger = pycrfsuite.Tagger()
        self._tagger.open(str(path))
        self.threshold = threshold

    def close(self) -> None:
        self._tagger.close()

    def spans(self, text: str, rules: list[Span]) -> list[Span]:
        toks = tokens(text)
        if not toks:
            return []
        caps = caps_document(text)
        out: list[Span] = []
        for window in _windows(text, toks):
            self._tag(text, window, rule_labels(window, rules), caps, out)
        return out

    def _tag(self, text: str, toks: list[tuple[int, int]], rules: list[str], caps: bool, out: list[Span]) -> None:
        labels = self._tagger.tag(featurize(text, toks, rules, caps))
        for i, (a, b) in enumerate(toks):
            if not text[a].isalpha() or not _content_word(text[a:b]):
                continue  # numbers (dates, phones, ids) are the patterns' job: they are exact there
            label = labels[i]
            if label == "O":
                if self._tagger.marginal("O", i) >= self.threshold:
                    continue
                label = max((lab for lab in self._tagger.labels() if lab != "O"),
                            key=lambda lab: self._tagger.marginal(lab, i))
            if label not in WORD_LABELS or (label == "NAME" and _clinical_typo(text[a:b])):
                continue
            if out and out[-1].label == label and _joinable(text, out[-1].end, a):
                out[-1] = Span(out[-1].start, b, label)
            else:
                out.append(Span(a, b, label))


def _windows(text: str, toks: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """`toks` in runs of at most WINDOW tokens, each ending at a line end where there is one."""
    out: list[list[tuple[int, int]]] = []
    start = 0
    while len(toks) - start > WINDOW:
        cut = start + WINDOW
        for j in range(cut, start + WINDOW // 2, -1):
            if "\n" in text[toks[j - 1][1]:toks[j][0]]:
                cut = j
                break
        out.append(toks[start:cut])
        start = cut
    out.append(toks[start:])
    return out


_NEVER = TITLES | CREDENTIALS | RELATIONS


def _content_word(raw: str) -> bool:
    """Function words ("and", "with", "saw") sit between names but are never part of one."""
    low = raw.lower()
    if low in STOP or low.rstrip(".") in _NEVER:
        return False
    return not (raw.islower() and low in vocab.common())


def _clinical_typo(raw: str) -> bool:
    """No census name, and a medical term, a typo of a word or two words run together
    ("Permacath", "Cardic", "Lungsounds"): the tagger's usual false alarm for a person. Places
    are spared: many are named with, or one letter from, ordinary words."""
    low = raw.lower()
    if low in vocab.first_names() or low in vocab.last_names() or len(low) < 4:
        return False
    return low in vocab.medical() or _misspelt_word(low) or _compound(low)


def _compound(low: str) -> bool:
    eng = vocab.english()
    return any(low[:i] in eng and low[i:] in eng for i in range(3, len(low) - 2))


def _joinable(text: str, end: int, start: int) -> bool:
    gap = text[end:start]
    return len(gap) <= 2 and "\n" not in gap


_local = threading.local()


@lru_cache(maxsize=1)
def _checked_model() -> Path:
    """The shipped model, its SHA-256 checked once per process."""
    sha = _data(MODEL.replace(".model", ".sha256")).read_text(encoding="ascii").split()[0]
    Tagger(_data(MODEL), sha).close()
    return _data(MODEL)


def default_tagger() -> Tagger:
    """The shipped tagger, one per thread: a CRFsuite tagger keeps per-call state (marginals)."""
    t = getattr(_local, "tagger", None)
    if t is None:
        t = _local.tagger = Tagger(_checked_model(), None)
    return t
