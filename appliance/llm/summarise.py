"""One summary, start to finish, the same in the daemon and offline (`appliancectl summarize`).

What a document is comes from its content (doctype), then:
- a document with its author's conclusion (IMPRESSION, CONCLUSION, INTERPRETATION, DIAGNOSIS,
  ASSESSMENT, A/P, ...) is summarised by that conclusion, item by item as written; a critical
  finding of the body it leaves out is added before it (extract);
- a note (discharge, progress, nursing, consult) by its problems, medication changes and
  follow-up in its own words (notes);
- a laboratory report by its abnormal values as reported (labs);
- a radiology report with no conclusion whose findings the reader knows: the model words the
  impression from its positive sentences, anchored (a finding it drops comes back), grounded (a
  line stating what the report does not is removed) and checked against the prompt's examples;
- anything else by the body's abnormal sentences.
Critical findings (critical) lead every summary and are stored in its structure. No line calls
a study normal unless every sentence of the source says so: a sentence the reader cannot read
is shown, not summed up as "normal". Every line carries the spans of the text it rests on."""
from __future__ import annotations

from typing import Any

import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .critical import critical_values, find_critical
from .doctype import classify, family
from .extract import (Line, body_lines, classify_sentence, conclusion_lines, critical_classes, lead_with_critical,
                      lead_with_values, tidy)
from .findings import affirmed, named, own_words, read, sentences
from .grounding import Flag, check
from .labs import results
from .notes import note_lines
from .outline import Section, outline
from .prompt import MAX_LINE, PROMPT_VERSION, Prompt, drop_copied, radiology_prompt
from .sections import cut_middle, find, source_text, split
from .think import strip_thinking

NORMAL_CHEST = "No acute cardiopulmonary abnormality."
NORMAL_OTHER = "No acute abnormality."
# Where a report that is not a chest radiograph says nothing abnormal in any sentence.
NORMAL_REPORTED = "No abnormality reported."
# Documents whose values are read against critical limits (a laboratory's own results).
VALUE_TYPES = frozenset({"lab", "lab-narrative"})
# Where the text states nothing a summary could rest on (no finding, no conclusion).
NOTHING_TO_SAY = "No summary: the report states no conclusion or finding that could be summarised; read the report."
# Findings radiologists follow with "no acute ..." in the impression when they are all the study
# shows (measured on the Open-i train split, share of such impressions that say it: cardiomegaly
# 67-76%, hiatal hernia 91%, fracture 75%; atelectasis and nodules only when described as minor
# (minimal, small, subsegmental, ...): 76% and 86%, against 58% and 42% otherwise).
PAIRS_WITH_NO_ACUTE = frozenset({"cardiomegaly", "hernia", "fracture"})
PAIRS_WITH_NO_ACUTE_WHEN_MINOR = frozenset({"atelectasis", "nodule"})
_MINOR = re.compile(r"(?i)\b(?:minimal|mild|small|subsegmental|trace|tiny|slight|minor|linear|platelike|discoid|"
                    r"streaky)\b")
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
              chronic: str = "all", on_line: Callable[[str], None] | None = None) -> Result:
    """`examples`: the site's own worked examples (prompt.site_examples), used before the built-in ones.
    `chronic`: which chronic findings of an otherwise normal study reach the impression: "all"
    (the default: no abnormal study is called normal), "likely" (those radiologists usually
    keep), "none" (the house style "No acute abnormality"); they stay in `findings` either way.
    `on_text` sees the model's raw tokens (for measuring only: they are not yet grounded);
    `on_line` each line of the summary once it has passed grounding, in order: what a client
    may be shown while the rest is written."""
    cancel = cancel or threading.Event()
    doc_type = classify(report, document_kind)
    fam = family(doc_type)
    if fam == "lab":
        result = _lab(report, model)
    elif fam == "note":
        result = _note(report, doc_type, model)
    else:
        sections = outline(report)
        concluded, communicated = conclusion_lines(report, sections)
        if concluded:
            result = _concluded(report, doc_type, concluded, communicated, model)
        elif doc_type == "radiology" and any(s.role == "findings" for s in sections) \
                and positive_sentences(source_text(report)[0]):
            result = _radiology(report, generate, max_sentences, max_source_chars, cancel, on_text, model,
                                opens_think, examples, chronic)
        else:
            result = _from_body(report, doc_type, sections, model)
    if on_line and not cancel.is_set():
        for line in _strings(result.structured.get("impression")) or [
                x for k in ("problems", "medication_changes", "follow_up") for x in _strings(result.structured.get(k))]:
            on_line(line)
    return result


def _record(report: str, kind: str, doc_type: str, lines: list[Line], model: str, **more: object) -> dict[str, object]:
    """The structure every summary shares: its lines with their spans and critical classes."""
    critical = find_critical(report) + (critical_values(report) if doc_type in VALUE_TYPES else [])
    return {"kind": kind, "document_type": doc_type, "lines": [ln.to_dict() for ln in lines],
            "critical": [c.to_dict() for c in critical], "is_critical": bool(critical),
            "truncated": False, "flags": [], "prompt_version": PROMPT_VERSION, "model": model, **more}


def _concluded(report: str, doc_type: str, concluded: list[Line], communicated: bool, model: str) -> Result:
    """The author's conclusion leads, restated item by item; a critical finding it leaves out is
    added before it from the body. Nothing is called normal that the author did not."""
    lines = lead_with_critical(concluded, report)
    lines = lead_with_values(lines, report) if doc_type in VALUE_TYPES else lines
    if all(classify_sentence(ln.text) == "normal" for ln in lines):
        # A conclusion that only says "normal" or "no acute ..." above a body that states an
        # abnormality: the body's abnormal sentences follow it (what it leaves out that matters).
        extra, _all_normal = body_lines(report, outline(report), limit=3)
        lines += [ln for ln in extra if all(ln.text != x.text for x in lines)]
    structured = _record(report, "radiology", doc_type, lines, model,
                         impression=[ln.text for ln in lines], impression_source="conclusion",
                         report_impression="", findings=_findings(report), follow_up=_follow_ups(report),
                         critical_communicated=communicated)
    return Result(structured, render(structured), (), 0, False)


def _from_body(report: str, doc_type: str, sections: list[Section], model: str) -> Result:
    """No conclusion and nothing the chest reader can anchor a model on: the body's abnormal
    sentences, critical first; "normal" only when every sentence of the body says so."""
    lines, all_normal = body_lines(report, sections)
    lines = lead_with_critical(lines, report)
    lines = lead_with_values(lines, report) if doc_type in VALUE_TYPES else lines
    origin = "body"
    if not lines and all_normal:
        chest = bool(_CHEST.search(report)) and doc_type == "radiology"
        lines = [Line(NORMAL_CHEST if chest else NORMAL_REPORTED, (), "source-normal")]
        origin = "source-normal"
    if not lines:
        lines = [Line(NOTHING_TO_SAY, (), "none")]
        origin = "none"
    structured = _record(report, "radiology", doc_type, lines, model, impression=[ln.text for ln in lines],
                         impression_source=origin, report_impression="", findings=_findings(report),
                         follow_up=_follow_ups(report))
    return Result(structured, render(structured), (), 0, False)


def _findings(text: str, offset: int = 0) -> list[dict[str, object]]:
    """Every finding the reader sees in `text`, with its sentence's span in the document
    (`offset`: where `text` starts in it)."""
    return [{"observation": f.observation, "affirmed": f.affirmed, "side": f.side,
             "span": [f.start + offset, f.end + offset], "sentence": text[f.start:f.end]} for f in read(text)]


def _follow_ups(report: str) -> list[str]:
    return [report[a:b] for sec in split(report) if sec.name in ("findings", "impression", "recommendation", "body")
            for a, b in _follow_up(report, sec.start, sec.end)]


def _radiology(report: str, generate: Generate, max_sentences: int, max_source_chars: int,
               cancel: threading.Event, on_text: Callable[[str], None] | None, model: str, opens_think: bool,
               examples: tuple[tuple[list[str], str], ...], chronic: str) -> Result:
    """A radiology report with no conclusion whose positive findings the reader knows (the chest
    radiograph's vocabulary): the model words the impression from them, anchored and grounded."""
    source, offset = source_text(report)
    source, truncated = cut_middle(source, max_source_chars)
    positives = positive_sentences(source)
    acute_study = any(p.acute for p in positives)
    if acute_study or chronic != "all":
        # Beside an acute finding, or where the site asks, only the chronic findings radiologists
        # usually keep; the others stay in `findings`.
        keep = LIKELY_MENTIONED if acute_study or chronic == "likely" else frozenset()
        positives = [p for p in positives if p.acute or p.observations & keep]
    chest = bool(_CHEST.search(report))
    # Sentences neither normal nor read as a known finding: shown, never summed up as "normal".
    unread = _unread_sentences(source, positives)
    otherwise_normal = not unread
    streamed = ""
    tokens = 0
    lines: list[str]
    flags: list[Flag] = []
    chronic_line = "" if acute_study or not positives else _chronic_line(positives[0], source)
    normal_line = NORMAL_CHEST if chest else NORMAL_OTHER
    if not positives:
        lines = [normal_line] if otherwise_normal else []
        origin = "source-normal"
    elif chronic_line:
        # One chronic finding in the report's own words (radiologists name it in a few words;
        # the sentence around it is detail the findings section keeps).
        lines = ([normal_line] if otherwise_normal else []) + [chronic_line]
        origin = "rule"
    else:
        picked = positives[:max_sentences if acute_study else 1]
        given = " ".join(source[p.start:p.end] for p in picked)
        prompt = radiology_prompt([source[p.start:p.end] for p in picked], examples)
        pieces = []
        for piece in strip_thinking(generate(prompt, cancel), opens_think):
            tokens += 1
            pieces.append(piece)
            if on_text:
                on_text(piece)
        streamed = "".join(pieces)
        lines, removed = _grounded_lines(streamed, given, source)
        flags.extend(removed)
        kept, copied = drop_copied(lines, source, examples)
        flags.extend(Flag("example", "", "a phrase of the prompt's worked examples") for _line in copied)
        lines = kept
        # Anchoring: an acute finding the report affirms must not vanish from the impression.
        said = {f.observation for line in lines for f in read(line) if f.affirmed}
        for p in picked:
            if p.acute - said or not lines:
                lines.append(tidy(source[p.start:p.end]))
                said |= p.observations
        lines = _named_lines(lines)
        if not acute_study and otherwise_normal:
            lines.insert(0, normal_line)
        elif acute_study and chest and otherwise_normal and all(
                _pairs_with_no_acute(p, source) for p in positives if p.acute):
            lines.append(NO_ACUTE_LUNG)
        origin = "model"
    whole = [Line(line, _support(line, source, offset, positives), origin if line not in (normal_line, NO_ACUTE_LUNG)
                  else "source-normal", critical_classes(line)) for line in lines]
    whole += [Line(tidy(source[a:b]), ((a + offset, b + offset),), "body", critical_classes(source[a:b]))
              for a, b in unread[:3]]
    out = lead_with_critical([ln for ln in whole if ln.text], source, offset)
    if not out:
        out = [Line(NOTHING_TO_SAY, (), "none")]
    # A model line whose number, unit, side or negation the report does not support is removed,
    # never shown with a flag; the finding it named is then said by the report's own sentence.
    unsupported = [ln for ln in out if ln.origin == "model" and check(ln.text, report)]
    for ln in unsupported:
        flags.extend(Flag(f.kind, "", f.reason) for f in check(ln.text, report))
        out.remove(ln)
        for a, b in ln.spans:
            anchor = Line(tidy(report[a:b]), ((a, b),), "body", critical_classes(report[a:b]))
            if anchor.text and all(anchor.text != x.text for x in out):
                out.append(anchor)
    report_impression = find(report, "impression")
    structured = _record(report, "radiology", "radiology", out, model, impression=[ln.text for ln in out],
                         impression_source=origin,
                         report_impression=report_impression.text(report) if report_impression else "",
                         findings=_findings(source, offset),
                         follow_up=_follow_ups(report))
    structured["truncated"] = truncated
    # What grounding removed is counted, never quoted: a removed line must not reach a reader,
    # the store or the audit in any form.
    structured["removed"] = {kind: sum(1 for f in flags if f.kind == kind) for kind in sorted({f.kind for f in flags})}
    return Result(structured, render(structured), tuple(flags), tokens, origin == "model", streamed)


def _unread_sentences(source: str, positives: list[Positive]) -> list[tuple[int, int]]:
    """Sentences of the source that are neither normal nor one of the positives read: the
    reader does not know what they say, so a summary must not call the study normal."""
    known = {(p.start, p.end) for p in positives}
    out = []
    for a, b in sentences(source):
        if (a, b) in known or any(f.affirmed for f in read(source[a:b])):
            continue
        if classify_sentence(source[a:b]) != "normal":
            out.append((a, b))
    return out


def _support(line: str, source: str, offset: int, positives: list[Positive]) -> tuple[tuple[int, int], ...]:
    """The source sentences a line rests on: those stating the findings it names."""
    names = {f.observation for f in read(line) if f.affirmed}
    spans = [(p.start + offset, p.end + offset) for p in positives if p.observations & names]
    return tuple(spans or [(p.start + offset, p.end + offset) for p in positives[:1]])


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
    lines = [Line(r.render(), ((r.start, r.end),), "lab", critical_classes(report[r.start:r.end])) for r in abnormal]
    lines = lead_with_values(lines, report) if lines else [Line(
        f"All {len(found)} results within their reference ranges.", tuple((r.start, r.end) for r in found),
        "source-normal")]
    structured = _record(
        report, "lab", "lab", lines, model, impression=[ln.text for ln in lines],
        abnormal=[{"test": r.test, "value": r.value, "unit": r.unit, "reference": r.reference, "flag": r.flag,
                   "span": [r.start, r.end]} for r in abnormal], results=len(found))
    return Result(structured, render(structured), (), 0, False)


def _note(report: str, doc_type: str, model: str) -> Result:
    """A note's problems, medication changes and follow-up in its own words (notes.py): doses
    and drug names copied, never generated."""
    parts = note_lines(report, outline(report))
    every = [ln for key in ("problems", "medication_changes", "follow_up") for ln in parts[key]]
    structured = _record(report, "note", doc_type, every, model,
                         **{k: [ln.text for ln in v] for k, v in parts.items()})
    return Result(structured, render(structured), (), 0, False)


_CONTENT = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
_FUNCTION = frozenset("a an the of in on at to with and or is are was were be there this that for by as its".split())


def _content(text: str) -> set[str]:
    return {w for w in _CONTENT.findall(text.lower()) if w not in _FUNCTION}


def _grounded_lines(text: str, given: str, source: str) -> tuple[list[str], list[Flag]]:
    """The model's lines, less any that states what the source does not (a finding, a negation,
    a number, a unit, a side) or whose words are mostly not in the findings it was given (an
    invented statement). The removed lines are returned as flags without their text."""
    lines: list[str] = []
    removed: list[Flag] = []
    vocabulary = _content(given)
    for line in (ln.strip(" -•\t") for ln in text.splitlines()):
        if not line:
            continue
        bad = check(line, source)
        if bad:
            removed.extend(Flag(f.kind, "", f.reason + "; removed from the impression") for f in bad)
            continue
        words = _content(line)
        if words and len(words - vocabulary) > len(words) / 2:
            removed.append(Flag("finding", "", "not in the report's positive findings; removed from the impression"))
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


def render(structured: dict[str, object]) -> str:
    """The summary as a clinician reads it: critical findings and the impression first."""
    out: list[str] = []
    if structured.get("kind") == "lab":
        out.append("ABNORMAL RESULTS:" if structured.get("abnormal") else "RESULTS:")
        out.extend(f"- {line}" for line in _strings(structured.get("impression")))
    elif structured.get("kind") == "radiology":
        out.append("IMPRESSION:")
        out.extend(f"- {line}" for line in _strings(structured.get("impression")))
        if structured.get("report_impression") and structured.get("impression_source") != "conclusion":
            out.append(f"RADIOLOGIST'S IMPRESSION (as written): {structured['report_impression']}")
        said = " ".join(_strings(structured.get("impression")))
        follow = [f for f in _strings(structured.get("follow_up")) if " ".join(f.split()) not in said]
        if follow:  # what the impression does not already say
            out.append("FOLLOW-UP: " + " ".join(follow))
    else:
        for key, title in (("problems", "PROBLEMS"), ("medication_changes", "MEDICATION CHANGES"),
                           ("follow_up", "FOLLOW-UP")):
            items = _strings(structured.get(key))
            if items:
                out.append(f"{title}: " + "; ".join(items))
    if structured.get("is_critical"):
        found = structured.get("critical")
        entries: list[Any] = found if isinstance(found, list) else []
        labels = sorted({str(c.get("label")) for c in entries if isinstance(c, dict)})
        out.insert(0, "CRITICAL: " + ", ".join(labels))
    if structured.get("truncated"):
        out.append("(summary written from a shortened report: the middle of the findings was omitted)")
    return "\n".join(out)


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def to_json(structured: dict[str, object]) -> str:
    return json.dumps(structured, ensure_ascii=False, sort_keys=True)
