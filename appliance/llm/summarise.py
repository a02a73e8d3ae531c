"""One summary, start to finish, the same in the daemon and offline (`appliancectl summarize`):
sections -> anchored findings -> the model's wording under a grammar -> grounding -> a
structured record and its rendering for people.

Radiology: the positive findings are read deterministically from FINDINGS (with the span of
each sentence) and given to the model, which only words the impression. An impression that
drops an acute finding the report affirms gets that finding's sentence back (calling an
abnormal study normal is the most dangerous error a summary can make); a line that affirms a
finding the report does not is removed and flagged. A report with no positive finding gets
the normal impression without a model call, and one with only chronic findings the normal
impression and its one chronic line in the report's own words (findings.own_words). The
radiologist's own IMPRESSION is kept whole."""
from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .findings import affirmed, named, own_words, read, sentences
from .grounding import Flag, check
from .labs import is_lab_report, results
from .prompt import MAX_LINE, PROMPT_VERSION, Prompt, note_prompt, radiology_prompt
from .sections import cut_middle, find, source_text, split
from .think import strip_thinking

NORMAL_CHEST = "No acute cardiopulmonary abnormality."
NORMAL_OTHER = "No acute abnormality."
# Findings radiologists follow with "no acute ..." in the impression when they are all the study
# shows (measured on the Open-i train split, share of such impressions that say it: cardiomegaly
# 67-76%, hiatal hernia 91%, fracture 75%; atelectasis and nodules only when described as minor
# (minimal, small, subsegmental, ...): 76% and 86%, against 58% and 42% otherwise).
PAIRS_WITH_NO_ACUTE = frozenset({"cardiomegaly", "hernia", "fracture"})
PAIRS_WITH_NO_ACUTE_WHEN_MINOR = frozenset({"atelectasis", "nodule"})
_MINOR = re.compile(r"(?i)\b(?:minimal|mild|small|subsegmental|trace|tiny|slight|minor|linear|platelike|discoid|streaky)\b")
NO_ACUTE_LUNG = "No acute pulmonary abnormality."
_CHEST = re.compile(r"(?i)\b(?:lung|lungs|pleural|cardiac|heart|mediastin\w*|chest|thora\w*|pneumothorax)\b")
_FOLLOW = re.compile(r"(?i)\b(?:recommend\w*|follow[- ]?up|correlat\w*|further evaluation|repeat imaging|"
                     r"should be considered|advised)\b")
# An acute finding outranks a chronic one; within each, an order: acute ones (any kind not in
# findings.CHRONIC) by urgency, chronic ones (CHRONIC, and the AGES kinds the report calls old or
# stable) by how often radiologists keep them in the impression of an otherwise normal study
# (measured on the Open-i train split; see LIKELY_MENTIONED), so that the one line such a study
# gets is the one most worth reading.
_ORDER = ["pneumothorax", "effusion", "consolidation", "edema", "cardiomegaly", "nodule", "lymphadenopathy",
          "opacity", "interstitial", "atelectasis", "fracture", "hernia"]
_CHRONIC_ORDER = ["emphysema", "hernia", "interstitial", "scarring", "opacity", "device", "nodule", "scoliosis",
                  "calcification", "granuloma", "postsurgical", "degenerative", "fracture"]

Generate = Callable[[Prompt, threading.Event], Iterator[str]]


@dataclass(frozen=True)
class Result:
    structured: dict[str, object]
    text: str  # rendered for people
    flags: tuple[Flag, ...]
    tokens: int
    model_called: bool
    streamed: str = ""  # what the model wrote, as streamed


def kind_of(document_kind: str, text: str) -> str:
    """"radiology" for imaging reports (DICOM SR, ORU with findings/impression), "lab" for
    results with values and ranges, else "note"."""
    if document_kind.startswith("dicom:") or find(text, "findings") or find(text, "impression"):
        return "radiology"
    if is_lab_report(text):
        return "lab"
    if document_kind.startswith("hl7:ORU") and _CHEST.search(text):
        return "radiology"
    return "note"


@dataclass(frozen=True)
class Positive:
    start: int
    end: int
    observations: frozenset[str]
    acute: frozenset[str]  # those the report does not call chronic, old or stable


def positive_sentences(source: str) -> list[Positive]:
    """Each sentence stating a positive finding, acute first, in the order of `_ORDER`."""
    obs: dict[tuple[int, int], set[str]] = {}
    acute: dict[tuple[int, int], set[str]] = {}
    for f in read(source):
        if f.affirmed:
            obs.setdefault((f.start, f.end), set()).add(f.observation)
            acute.setdefault((f.start, f.end), set()).update(() if f.chronic else (f.observation,))
    found = [Positive(a, b, frozenset(o), frozenset(acute[(a, b)])) for (a, b), o in obs.items()]
    return sorted(found, key=lambda p: (0, min(_ORDER.index(o) for o in p.acute), p.start) if p.acute
                  else (1, min(_CHRONIC_ORDER.index(o) for o in p.observations), p.start))


# Chronic findings that radiologists usually keep in the impression of an otherwise normal study:
# those whose chronic-only studies have an abnormal reference impression at least 30% of the time,
# measured on the Open-i train split (reported on validate): emphysema 61%, hernia and interstitial
# markings 50% (few), scarring 34%, old or stable opacities 33%, devices 31%; 12-18% for
# degenerative change, calcification, granuloma, surgical clips, old fractures, stable nodules, scoliosis.
LIKELY_MENTIONED = frozenset({"emphysema", "hernia", "interstitial", "scarring", "opacity", "device"})
CHRONIC_POLICIES = ("all", "likely", "none")


def summarise(report: str, document_kind: str, generate: Generate, *, max_sentences: int = 2,
              max_source_chars: int = 6000, cancel: threading.Event | None = None,
              on_text: Callable[[str], None] | None = None, model: str = "",
              opens_think: bool = False, examples: tuple[tuple[list[str], str], ...] = (),
              chronic: str = "all") -> Result:
    """`examples`: the site's own worked examples (prompt.site_examples), used before the built-in ones.
    `chronic`: which chronic findings of an otherwise normal study reach the impression: "all"
    (the default: no abnormal study is called normal), "likely" (those radiologists usually
    keep), "none" (the house style "No acute abnormality"); they stay in `findings` either way."""
    cancel = cancel or threading.Event()
    kind = kind_of(document_kind, report)
    if kind == "lab":
        return _lab(report, model)
    if kind == "note":
        return _note(report, generate, cancel, on_text, model, opens_think, max_source_chars)
    source, offset = source_text(report)
    source, truncated = cut_middle(source, max_source_chars)
    positives = positive_sentences(source)
    acute_study = any(p.acute for p in positives)
    if acute_study or chronic != "all":
        # Beside an acute finding, or where the site asks, only the chronic findings radiologists
        # usually keep; the others stay in `findings`.
        keep = LIKELY_MENTIONED if acute_study or chronic == "likely" else frozenset()
        positives = [p for p in positives if p.acute or p.observations & keep]
    report_impression = find(report, "impression")
    chest = bool(_CHEST.search(report))
    streamed = ""
    tokens = 0
    lines: list[str]
    flags: list[Flag] = []
    chronic_line = "" if acute_study or not positives else _chronic_line(positives[0], source)
    if not positives:
        lines = [NORMAL_CHEST if chest else NORMAL_OTHER]
        origin = "rule"
    elif chronic_line:
        # One chronic finding in the report's own words (radiologists name it in a few words;
        # the sentence around it is detail the findings section keeps).
        lines = [NORMAL_CHEST if chest else NORMAL_OTHER, chronic_line]
        origin = "rule"
    else:
        picked = positives[:max_sentences if acute_study else 1]
        prompt = radiology_prompt([source[p.start:p.end] for p in picked], examples)
        pieces = []
        for piece in strip_thinking(generate(prompt, cancel), opens_think):
            tokens += 1
            pieces.append(piece)
            if on_text:
                on_text(piece)
        streamed = "".join(pieces)
        lines, removed = _grounded_lines(streamed, " ".join(source[p.start:p.end] for p in picked), source)
        flags.extend(removed)
        # Anchoring: an acute finding the report affirms must not vanish from the impression.
        said = {f.observation for line in lines for f in read(line) if f.affirmed}
        for p in picked:
            if p.acute - said or not lines:
                lines.append(_tidy(source[p.start:p.end]))
                said |= p.observations
        lines = _named_lines(lines)
        if not acute_study:
            lines.insert(0, NORMAL_CHEST if chest else NORMAL_OTHER)
        elif chest and all(_pairs_with_no_acute(p, source) for p in positives if p.acute):
            lines.append(NO_ACUTE_LUNG)
        origin = "model"
    impression_text = "\n".join(lines)
    flags.extend(f for f in check(impression_text, report) if f not in flags)
    findings = [{"observation": f.observation, "affirmed": f.affirmed, "side": f.side,
                 "span": [f.start + offset, f.end + offset], "sentence": source[f.start:f.end]}
                for f in read(source)]
    follow_up = [report[a:b] for sec in split(report) if sec.name in ("findings", "impression", "recommendation", "body")
                 for a, b in _follow_up(report, sec.start, sec.end)]
    structured: dict[str, object] = {
        "kind": "radiology", "impression": lines, "impression_source": origin,
        "report_impression": report_impression.text(report) if report_impression else "",
        "findings": findings, "follow_up": follow_up, "truncated": truncated,
        "flags": [fl.render() for fl in flags], "prompt_version": PROMPT_VERSION, "model": model}
    return Result(structured, render(structured), tuple(flags), tokens, origin == "model", streamed)


def _chronic_line(p: Positive, source: str) -> str:
    """One finding named: the thing a sentence is about ("granuloma"), not a finding that only
    qualifies it ("calcified" granuloma), when its words name just the one."""
    sentence = source[p.start:p.end]
    lines = [own_words(sentence, o) for o in sorted(p.observations, key=_CHRONIC_ORDER.index)]
    single = [line for line in lines if line and len(affirmed(line) & p.observations) == 1]
    return (single or lines)[0]


def _pairs_with_no_acute(p: Positive, source: str) -> bool:
    minor = bool(_MINOR.search(source[p.start:p.end]))
    return all(o in PAIRS_WITH_NO_ACUTE or (minor and o in PAIRS_WITH_NO_ACUTE_WHEN_MINOR) for o in p.acute)


def _lab(report: str, model: str) -> Result:
    """Abnormal results as reported, in report order: exact numbers need no model."""
    found = results(report)
    abnormal = [r for r in found if r.abnormal]
    lines = [r.render() for r in abnormal] or [f"All {len(found)} results within their reference ranges."]
    structured: dict[str, object] = {
        "kind": "lab", "impression": lines,
        "abnormal": [{"test": r.test, "value": r.value, "unit": r.unit, "reference": r.reference, "flag": r.flag,
                      "span": [r.start, r.end]} for r in abnormal],
        "results": len(found), "truncated": False, "flags": [], "prompt_version": PROMPT_VERSION, "model": model}
    return Result(structured, render(structured), (), 0, False)


def _note(report: str, generate: Generate, cancel: threading.Event, on_text: Callable[[str], None] | None,
          model: str, opens_think: bool, max_chars: int) -> Result:
    text, truncated = cut_middle(report, max_chars)
    pieces = []
    tokens = 0
    for piece in strip_thinking(generate(note_prompt(text), cancel), opens_think):
        tokens += 1
        pieces.append(piece)
        if on_text:
            on_text(piece)
    streamed = "".join(pieces)
    items: dict[str, list[str]] = {"problems": [], "medication_changes": [], "follow_up": []}
    keys = {"problem": "problems", "medication": "medication_changes", "follow-up": "follow_up"}
    for line in streamed.splitlines():
        head, _, rest = line.partition(":")
        if head.strip().lower() in keys and rest.strip():
            items[keys[head.strip().lower()]].append(rest.strip())
    flags = check(streamed, report)
    structured: dict[str, object] = {"kind": "note", **items, "truncated": truncated,
                                     "flags": [f.render() for f in flags], "prompt_version": PROMPT_VERSION,
                                     "model": model}
    return Result(structured, render(structured), tuple(flags), tokens, True, streamed)


_CONTENT = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
_FUNCTION = frozenset("a an the of in on at to with and or is are was were be there this that for by as its".split())


def _content(text: str) -> set[str]:
    return {w for w in _CONTENT.findall(text.lower()) if w not in _FUNCTION}


def _grounded_lines(text: str, given: str, source: str) -> tuple[list[str], list[Flag]]:
    """The model's lines, less any that affirms a finding the source does not, or whose words
    are mostly not in the findings it was given (an invented statement): both flagged."""
    lines: list[str] = []
    removed: list[Flag] = []
    vocabulary = _content(given)
    for line in (ln.strip(" -•\t") for ln in text.splitlines()):
        if not line:
            continue
        bad = [f for f in check(line, source) if f.kind in ("finding", "negation")]
        if bad:
            removed.extend(Flag(f.kind, f.text, f.reason + "; removed from the impression") for f in bad)
            continue
        words = _content(line)
        if words and len(words - vocabulary) > len(words) / 2:
            removed.append(Flag("finding", line, "not in the report's positive findings; removed from the impression"))
            continue
        if len(line) > MAX_LINE:  # an impression line, not a paragraph: cut at a word
            line = line[:MAX_LINE].rsplit(" ", 1)[0].rstrip(",;: ")
        lines.append(line if line.endswith(".") else line + ".")
    return lines, removed


def _named_lines(lines: list[str]) -> list[str]:
    """Each line that states a finding only indirectly ("Heart is large") in the register of an
    impression ("Cardiomegaly."), the words that named it kept after it when they say more: where
    (a rib, a lobe) or another finding, not what a name that carries its organ already says ("Heart
    size is enlarged, pulmonary vascularity within normal limits" -> "Cardiomegaly."); no line twice."""
    out: list[str] = []
    for line in lines:
        mentions = read(line)
        names = named(line, mentions)
        if names:
            head = "; ".join(names)
            said = " ".join(names + [f.cue for f in mentions if f.cue])
            more = len(_content(line) - _content(said)) > 2
            organ_in_name = all(f.observation in _NAMES_SAY_WHERE for f in mentions if f.affirmed and f.cue)
            direct = any(f.affirmed and not f.cue for f in mentions)
            rest = line if more and (direct or not organ_in_name) else ""
            line = head[:1].upper() + head[1:] + ("" if not rest else " (" + rest.rstrip(".") + ")") + "."
        if line.lower() not in (x.lower() for x in out):
            out.append(line)
    return out


# Findings whose impression name says where they are (the heart, the pulmonary vessels).
_NAMES_SAY_WHERE = frozenset({"cardiomegaly", "edema"})


def _follow_up(report: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentences of report[start:end] that recommend or ask for something, in report offsets."""
    part = report[start:end]
    return [(a + start, b + start) for a, b in sentences(part) if _FOLLOW.search(part[a:b])]


_LEAD = re.compile(r"(?i)^(?:(?:there (?:is|are)|again (?:seen|noted) (?:is|are)|the|a|an)\s+)+")
_TRAIL = re.compile(r"(?i)\s+(?:is|are) (?:again )?(?:noted|seen|present|identified|demonstrated)(?=[.]?$)")


def _tidy(sentence: str) -> str:
    """A findings sentence in the impression's register: no "There is", no "is noted"."""
    s = _TRAIL.sub("", _LEAD.sub("", sentence.strip())).rstrip(". ")
    return (s[:1].upper() + s[1:] + ("" if s.endswith(("?", "!")) else ".")) if s else ""


def render(structured: dict[str, object]) -> str:
    """The summary as a clinician reads it: impression first."""
    out: list[str] = []
    if structured.get("kind") == "lab":
        out.append("ABNORMAL RESULTS:" if structured.get("abnormal") else "RESULTS:")
        out.extend(f"- {line}" for line in _strings(structured.get("impression")))
    elif structured.get("kind") == "radiology":
        out.append("IMPRESSION:")
        out.extend(f"- {line}" for line in _strings(structured.get("impression")))
        if structured.get("report_impression"):
            out.append(f"RADIOLOGIST'S IMPRESSION (as written): {structured['report_impression']}")
        if structured.get("follow_up"):
            out.append("FOLLOW-UP: " + " ".join(_strings(structured["follow_up"])))
    else:
        for key, title in (("problems", "PROBLEMS"), ("medication_changes", "MEDICATION CHANGES"),
                           ("follow_up", "FOLLOW-UP")):
            items = _strings(structured.get(key))
            if items:
                out.append(f"{title}: " + "; ".join(items))
    if structured.get("truncated"):
        out.append("(summary written from a shortened report: the middle of the findings was omitted)")
    return "\n".join(out)


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def to_json(structured: dict[str, object]) -> str:
    return json.dumps(structured, ensure_ascii=False, sort_keys=True)
