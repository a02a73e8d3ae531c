"""What the model is asked, with worked examples written for this project (never taken from a
corpus). The model is given a radiology report's positive findings (anchoring) and asked only
for the wording of an impression; what it may write is bounded by a grammar, and any line that
shares a distinctive phrase with the examples (and not with the report) is dropped: a small
model copies its examples into a patient's summary. Notes are not given to the model at all
(notes.py): their medication changes must be copied exactly, which extraction does and a
0.5B model, measured, did not."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

PROMPT_VERSION = "2026-12-07.r5"

RADIOLOGY_SYSTEM = (
    "You write the IMPRESSION of a radiology report from its positive findings, as the radiologist "
    "would sign it: one to three short lines, most important first, each a noun phrase. Keep every "
    "side, size, unit and location exactly as given. Never add a finding, never drop one, no advice.")

# (positive findings as given to the model, the impression it should write). Written here.
RADIOLOGY_EXAMPLES: list[tuple[list[str], str]] = [
    (["There is a moderate left pleural effusion with adjacent compressive atelectasis.",
      "The cardiac silhouette is mildly enlarged."],
     "Moderate left pleural effusion with adjacent atelectasis.\nMild cardiomegaly."),
    (["Patchy airspace opacity is present in the right lower lobe, concerning for pneumonia."],
     "Right lower lobe airspace opacity, concerning for pneumonia."),
    (["A 9 mm nodule projects over the left upper lung zone.",
      "Multilevel degenerative changes of the thoracic spine."],
     "9 mm left upper lung nodule.\nDegenerative changes of the thoracic spine."),
    (["Small right apical pneumothorax measuring 1.5 cm.", "Right chest tube in place."],
     "Small right apical pneumothorax, 1.5 cm.\nRight chest tube in place."),
]

@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, str]]
    grammar: str  # GBNF: bounded lines, so generation always terminates


# One to three lines: the grammar makes the output an impression, never an essay; max_tokens
# bounds each line (a bounded repetition such as [^\n]{2,160} costs llama.cpp's grammar sampler
# a stack per character: measured 16 against 26 tokens/s, so line length is cut afterwards).
RADIOLOGY_GRAMMAR = r'''root ::= line ("\n" line)? ("\n" line)?
line ::= [A-Za-z0-9] [^\n]+
'''
MAX_LINE = 160


def site_examples(state_dir: Path | None) -> tuple[tuple[list[str], str], ...]:
    """A hospital's own worked examples, `examples.jsonl` in the state directory
    ({"findings": [...], "impression": "..."} per line), used before the built-in ones."""
    if state_dir is None:
        return ()
    path = state_dir / "examples.jsonl"
    if not path.exists():
        return ()
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            out.append((list(rec["findings"]), str(rec["impression"])))
    return tuple(out)


def findings_block(sentences: list[str]) -> str:
    return "Positive findings:\n" + "\n".join(f"- {s.strip()}" for s in sentences)


def radiology_prompt(positive_sentences: list[str], extra: tuple[tuple[list[str], str], ...] = ()) -> Prompt:
    msgs = [{"role": "system", "content": RADIOLOGY_SYSTEM}]
    for findings, impression in [*extra, *RADIOLOGY_EXAMPLES][:6]:
        msgs.append({"role": "user", "content": findings_block(findings)})
        msgs.append({"role": "assistant", "content": impression})
    msgs.append({"role": "user", "content": findings_block(positive_sentences)})
    return Prompt(msgs, RADIOLOGY_GRAMMAR)


_WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
_FUNCTION = frozenset("a an the of in on at to with and or is are was were be there this that for by as its no".split())


def _grams(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {g for g in zip(*(words[i:] for i in range(n)), strict=False) if sum(w not in _FUNCTION for w in g) >= 2}


def example_grams(extra: tuple[tuple[list[str], str], ...] = ()) -> set[tuple[str, ...]]:
    """The distinctive three-word phrases of every worked example, its input and its output."""
    out: set[tuple[str, ...]] = set()
    for findings, impression in [*extra, *RADIOLOGY_EXAMPLES]:
        for text in [*findings, impression]:
            out |= _grams(text)
    return out


def drop_copied(lines: list[str], source: str,
                extra: tuple[tuple[list[str], str], ...] = ()) -> tuple[list[str], list[str]]:
    """(kept, dropped): a line that shares a distinctive phrase with the worked examples which
    the source does not contain is a copy, whatever else it says."""
    copyable = example_grams(extra) - _grams(source)
    kept: list[str] = []
    dropped: list[str] = []
    for line in lines:
        (dropped if _grams(line) & copyable else kept).append(line)
    return kept, dropped
