"""What the model is asked, per document kind, with worked examples written for this project
(never taken from a corpus). The model is given the report's positive findings (anchoring) and
asked only for the wording of an impression; what it may write is bounded by a grammar."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

PROMPT_VERSION = "2026-12-01.r4"

RADIOLOGY_SYSTEM = (
    "You write the IMPRESSION of a radiology report from its positive findings, as the radiologist "
    "would sign it: one to three short lines, most important first, each a noun phrase. Keep every "
    "side, size, unit and location exactly as given. Never add a finding, never drop one, no advice.")

NOTE_SYSTEM = (
    "You summarise a clinical note for the next clinician in at most four lines, each starting with "
    "'Problem:', 'Medication:' or 'Follow-up:'. Use only what the note states; copy numbers exactly.")

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
NOTE_EXAMPLES: list[tuple[str, str]] = [
    ("Pt with CHF exacerbation, diuresed with furosemide 40 mg IV, weight down 1.2 kg. Started metoprolol "
     "25 mg. Plan echo tomorrow, recheck K in am.",
     "Problem: CHF exacerbation, weight down 1.2 kg after diuresis.\nMedication: furosemide 40 mg IV given; "
     "metoprolol 25 mg started.\nFollow-up: echo tomorrow; recheck K in the morning."),
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
NOTE_GRAMMAR = r'''root ::= item ("\n" item)? ("\n" item)? ("\n" item)?
item ::= ("Problem: " | "Medication: " | "Follow-up: ") [^\n]+
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


def note_prompt(text: str) -> Prompt:
    msgs = [{"role": "system", "content": NOTE_SYSTEM}]
    for note, summary in NOTE_EXAMPLES:
        msgs.append({"role": "user", "content": f"Note:\n{note}"})
        msgs.append({"role": "assistant", "content": summary})
    msgs.append({"role": "user", "content": f"Note:\n{text}"})
    return Prompt(msgs, NOTE_GRAMMAR)
