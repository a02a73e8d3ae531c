"""Lines taken from the document itself, each with the span it rests on: the author's conclusion
item by item, and where there is none, the sentences of the body that state something abnormal.

Every sentence is read as normal (it only says that something is normal or absent), abnormal
(it asserts an abnormal finding) or unknown (neither can be shown). A summary may say "normal"
only when every sentence is normal; an unknown sentence is shown rather than called normal,
because "I cannot tell" is better than a false "normal"."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .context import assertion
from .critical import critical_values, find_critical, is_communication, question_ranges
from .findings import MEASURE, read, sentences
from .outline import Section, conclusion_sections, items, role_of

# Words that state an abnormality, whatever the organ or modality (prefixes and suffixes of the
# field's vocabulary, not a list of findings): each is read with its ConText assertion.
_ABNORMAL = re.compile(
    r"(?i)\b(?:abnormal\w*|enlarg\w*|dilat\w*|distend\w*|thicken\w*|mass(?:es)?|lesions?|collections?|hematoma\w*|"
    r"fractur\w*|occlu\w*|stenos\w*|stenotic|thromb\w*|embol\w*|effusions?|hemorrhag\w*|haemorrhag\w*|bleed\w*|"
    r"infarct\w*|ischemi\w*|edema\w*|oedema|opacit\w*|consolidat\w*|nodul\w*|cysts?|cystic|calcifi\w*|hernia\w*|"
    r"aneurysm\w*|dissect\w*|obstruct\w*|tears?|torn|ruptur\w*|displace\w*|deformit\w*|narrow\w*|erosi\w*|destruct\w*|"
    r"lucen\w*|scleros\w*|sclerotic|hyperdens\w*|hypodens\w*|hyperintens\w*|hypointens\w*|hyperecho\w*|hypoecho\w*|"
    r"enhanc\w*|restrict\w*|filling defects?|free (?:air|fluid)|shift|herniat\w*|compress\w*|atroph\w*|"
    r"\w+itis|\w{3,}omas?|\w{3,}osis|\w+megaly|\w+ectasis|\w+pathy|elevat\w*|depress\w*|prolong\w*|decreas\w*|"
    r"increas\w*|reduced|positive|suspicious|concerning|worrisome|suspect\w*|tumou?rs?|cancer\w*|carcinoma\w*|"
    r"metasta\w*|malignan\w*|infiltrat\w*|hypokines\w*|akines\w*|dyskines\w*|regurgita\w*|block|tachycardi\w*|"
    r"bradycardi\w*|fibrillation|flutter|atypi\w*|dysplas\w*|blasts?|necros\w*|necrotic|abscess\w*|perforat\w*|"
    r"torsion|ectopic|leak\w*|shock|sepsis|septic|failure|injur\w*|contusion|laceration|avulsion|wall motion|"
    r"pneumo\w+|anemi\w*|transfus\w*|critical|severe\w*|moderate\w*|mild\w*|small|large|new|worse\w*|progress\w*|"
    r"significant|grade \d|stage \w+|ef (?:of )?\d+|\d+\s*%|(?:mm|cm)\b|dysfunction|impair\w*|insufficien\w*|"
    r"incompeten\w*|hypertroph\w*|polyps?|adenoma\w*|varic\w*|hypoxi\w*|hypotens\w*|hypertens\w*|deficien\w*|"
    r"fever\w*|febrile|wound|ulcer\w*|malposition\w*|misplace\w*|retain\w*|remove|removal|replace\w*|fibroids?|"
    r"distort\w*|\w{3,}emia|\w{2,}uria|\w+plegi\w*|\w+pare(?:sis|tic)|\w*pnea|\w+cardia|\w+rrh\w+|weakness|pain\w*|"
    r"confus\w*|delirium|seizure\w*|syncop\w*|fall|falls|anomal\w*|variant|irregular\w*|heterogen\w*)")
_NORMAL = re.compile(
    r"(?i)\b(?:normal\w*|unremarkable|clear|patent|intact|no|not|without|negative|within (?:the )?normal limits|"
    r"symmetric\w*|preserved|maintained|appropriate|physiologic\w*|satisfactory|well[- ]\w+|midline|"
    r"none|absent|benign|noncontributory|stable|unchanged|resolved)\b")
# A term of degree or size qualifies a finding; alone it states none ("normal size", "small bowel").
_QUALIFIERS = re.compile(r"(?i)^(?:small|large|mild\w*|moderate\w*|severe\w*|new|significant|increas\w*|decreas\w*|"
                         r"reduced|positive|elevat\w*|depress\w*|shift|grade \d|stage \w+|\d+\s*%|mm|cm|block|"
                         r"critical|progress\w*|worse\w*|ef (?:of )?\d+)$")
_NOT_FINDINGS = re.compile(r"(?i)^(?:diagnosis|prognosis|emphasis|thesis|hypothesis|basis|analysis|synthesis|"
                           r"diagnoses|stoma|coma|aroma|chroma|trauma|gamma|soma|plasma|stigma|comma|dogma|"
                           r"sympathy|empathy|therapy|approach|idiopathic)$")
_LEAD = re.compile(r"(?i)^(?:(?:there (?:is|are)|again (?:seen|noted) (?:is|are)|the|a|an)\s+)+")
_TRAIL = re.compile(r"(?i)\s+(?:is|are) (?:again )?(?:noted|seen|present|identified|demonstrated)(?=[.]?$)")


@dataclass(frozen=True)
class Line:
    text: str
    spans: tuple[tuple[int, int], ...]  # what it rests on, as offsets into the text summarised
    origin: str  # "conclusion", "body", "model", "source-normal", "lab"
    critical: tuple[str, ...] = field(default=())  # critical classes it asserts

    def to_dict(self) -> dict[str, object]:
        return {"text": self.text, "spans": [list(s) for s in self.spans], "origin": self.origin,
                "critical": list(self.critical)}


def abnormal_terms(sentence: str) -> list[str]:
    """The words of `sentence` that assert an abnormality for this patient now."""
    out = []
    for m in _ABNORMAL.finditer(sentence):
        word = m.group(0)
        if _NOT_FINDINGS.match(word):
            continue
        if assertion(sentence, m.start(), m.end()).asserted:
            out.append(word)
    return out


def classify_sentence(sentence: str) -> str:
    """"abnormal", "normal" or "unknown"."""
    found = abnormal_terms(sentence)
    real = [w for w in found if not _QUALIFIERS.match(w)]
    chest = [f for f in read(sentence) if f.affirmed]
    if real or chest or find_critical(sentence):
        return "abnormal"
    if _NORMAL.search(sentence) and not found:
        return "normal"
    return "unknown"


_HEADED = re.compile(r"^(?P<name>[A-Za-z][A-Za-z /&'-]{0,40}):\s+")


_MARKER = re.compile(r"^(?:\(?\d{1,2}[.)]|\(?[a-h][.)]|[#*\u2022-])\s+")


def strip_marker(text: str) -> str:
    """An item without its list marker ("2) ", "# ", "- ")."""
    return _MARKER.sub("", text, count=1)


def tidy(sentence: str) -> str:
    """A body sentence in a summary's register: no heading, no "There is", no "is noted", one line."""
    s = " ".join(sentence.split())
    head = _HEADED.match(s)
    if head and role_of(head.group("name")) != "other":
        s = s[head.end():]
    s = _TRAIL.sub("", _LEAD.sub("", s)).rstrip(". ")
    return (s[:1].upper() + s[1:] + ("" if s.endswith(("?", "!")) else ".")) if s else ""


def critical_classes(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c.cls for c in find_critical(text)))


def conclusion_lines(doc: str, sections: list[Section]) -> tuple[list[Line], bool]:
    """The author's conclusion, item by item, as written (whitespace collapsed); a sentence that
    only records who was told is left out. A conclusion written in prose without a heading ("My
    impression is ...") counts. Returns (lines, a critical result was communicated)."""
    lines: list[Line] = []
    communicated = False
    spans = [span for sec in conclusion_sections(doc, sections) for span in items(doc, sec.start, sec.end)]
    if not spans:
        spans = [(a, b) for a, b, _c in body_sentences(doc, sections) if _PROSE_CONCLUSION.match(doc[a:b])]
    for a, b in spans:
        if is_communication(doc[a:b]):
            communicated = True
            continue
        line = item_line(doc, a, b, "conclusion")
        if line is not None:
            lines.append(line)
    return lines, communicated


def item_line(doc: str, a: int, b: int, origin: str) -> Line | None:
    """The item doc[a:b] as a line: one line of text, its list marker left out, a full stop at
    its end; None for an item with nothing to read (a bare marker, a number alone)."""
    text = strip_marker(" ".join(doc[a:b].split()))
    if len(text) < 3 or not any(c.isalpha() for c in text):
        return None
    if not text.endswith((".", "?", "!", ")")):
        text += "."
    return Line(text, ((a, b),), origin, critical_classes(doc[a:b]))


# A sentence that introduces the patient ("44F with ...", "68-year-old man presenting with") is
# the reason for the study, whether or not it has a heading.
_INTRODUCES = re.compile(r"(?i)^(?:(?:this|a|an|the)\s+)?\d{1,3}\s*(?:-?\s*(?:year|yr|y)s?[- ]?old|yo|y/o|[mf])\b")
# A line that identifies the patient (a header: name, MRN, date of birth) states nothing clinical,
# and a summary must not carry what the de-identifier might have missed in it.
_IDENTITY_LINE = re.compile(r"(?i)\b(?:mrn|dob|d\.o\.b|date of birth|medical record|acct|account (?:no|number)|"
                            r"patient name|name)\b\s*[:#|]|\b(?:mrn|dob)\b")
# A conclusion written in prose, without a heading.
_PROSE_CONCLUSION = re.compile(r"(?i)^(?:my |our |the )?(?:overall |final )?"
                               r"(?:impression|assessment|conclusion|diagnosis|"
                               r"interpretation)\s+(?:is|was|are)\b|^in (?:summary|conclusion)\b|^(?:overall|summary),")


def body_sentences(doc: str, sections: list[Section], report: bool = True) -> list[tuple[int, int, str]]:
    """(start, end, class) of every sentence outside the question, technique and conclusion
    sections: what a document without a conclusion is summarised from. `report`: a report's
    sentence that introduces the patient is its indication (a note's is its history), and
    its title line is no statement."""
    skip_roles = {"question", "technique", "conclusion", "comment", "medications", "follow_up"}
    ranges = [(s.start, s.end) for s in sections if s.role not in skip_roles]
    skip = question_ranges(doc, sections)
    out = []
    for start, end in ranges:
        for a, b in sentences(doc[start:end]):
            a, b = a + start, b + start
            if any(a < e and s < b for s, e in skip):
                continue
            sentence = doc[a:b]
            if is_communication(sentence) or _IDENTITY_LINE.search(sentence) or _is_title(doc, a, b) \
                    or (report and _INTRODUCES.match(sentence)):
                continue
            out.append((a, b, classify_sentence(sentence)))
    return out


def _is_title(doc: str, a: int, b: int) -> bool:
    """The document's first line when it is short: a title ("PELVIC ULTRASOUND"), no statement."""
    first = doc.lstrip()
    lead = len(doc) - len(first)
    line_end = doc.find("\n", lead)
    line_end = len(doc) if line_end < 0 else line_end
    return a <= lead + 1 and b <= line_end and len(doc[a:b].split()) <= 8 and not critical_classes(doc[a:b])


def body_lines(doc: str, sections: list[Section], limit: int = 4, report: bool = True) -> tuple[list[Line], bool]:
    """The abnormal sentences of the body, critical first, then those the reader cannot tell
    normal or not, at most `limit` besides the critical ones (never a normal line made up).
    Returns (lines, every sentence is normal)."""
    found = body_sentences(doc, sections, report)
    abnormal = [(a, b) for a, b, c in found if c == "abnormal"]
    unknown = [(a, b) for a, b, c in found if c == "unknown"]
    picked = abnormal + unknown
    lines = [Line(tidy(doc[a:b]), ((a, b),), "body", critical_classes(doc[a:b])) for a, b in picked]
    lines = [ln for ln in lines if ln.text]
    crit = [ln for ln in lines if ln.critical]
    rest = [ln for ln in lines if not ln.critical]
    return crit + rest[:max(0, limit - len(crit)) if crit else limit], not abnormal and not unknown and bool(found)


_REASSURING = re.compile(r"(?i)\b(?:no|normal|unremarkable|negative|within normal limits|no significant)\b")


def _stems(text: str) -> set[str]:
    return {w.lower()[:6] for w in abnormal_terms(text) if not _QUALIFIERS.match(w)}


def _measured_detail(line: Line, doc: str, offset: int, taken: set[tuple[tuple[int, int], ...]]) -> Line | None:
    """The body sentence that measures what a critical line names (they share an abnormal
    term, and the sentence gives a size or a value the line does not)."""
    stems = _stems(line.text)
    if not stems:
        return None
    for a, b in sentences(doc):
        sentence = doc[a:b]
        span = ((a + offset, b + offset),)
        if span in taken or not MEASURE.search(sentence) or sentence.strip() in line.text:
            continue
        if stems & _stems(sentence) and classify_sentence(sentence) == "abnormal":
            return Line(tidy(sentence), span, "body", critical_classes(sentence))
    return None


def reassurance_last(critical: list[Line]) -> list[Line]:
    """The first line is the one read: a critical line that says nothing a reader could take for
    reassurance ("negative", "normal", "no ...") goes before one that does; order kept otherwise."""
    return sorted(critical, key=lambda ln: bool(_REASSURING.search(ln.text)))


def lead_with_critical(lines: list[Line], doc: str, offset: int = 0) -> list[Line]:
    """Critical lines first (their order kept); a critical finding the lines do not assert
    gets its own sentence from the document, at the top (`offset`: where `doc` starts in the
    text summarised)."""
    said = {c for ln in lines for c in ln.critical}
    measured = {c for ln in lines if MEASURE.search(ln.text) for c in ln.critical}
    added: list[Line] = []
    details: list[Line] = []
    for c in find_critical(doc):
        sentence = doc[c.start:c.end]
        line = Line(tidy(sentence), ((c.start + offset, c.end + offset),), "body", critical_classes(sentence))
        if c.cls not in said:
            said.add(c.cls)
            added.append(line)
        elif c.cls not in measured and MEASURE.search(sentence):
            # The conclusion names the critical finding without its size: the sentence that
            # measures it follows (what the conclusion leaves out that matters).
            measured.add(c.cls)
            details.append(line)
    critical = [ln for ln in lines if ln.critical] + added
    critical = reassurance_last(critical)
    for ln in critical:
        if MEASURE.search(ln.text) or any(set(ln.critical) <= set(d.critical) for d in details):
            continue
        detail = _measured_detail(ln, doc, offset, {d.spans for d in details + lines + added})
        if detail is not None:
            details.append(detail)
    critical += details
    everything = critical + [ln for ln in lines if not ln.critical]
    out: list[Line] = []
    for ln in everything:
        if ln.text and ln.text.lower() not in (x.text.lower() for x in out):
            out.append(ln)
    return out


def lead_with_values(lines: list[Line], doc: str) -> list[Line]:
    """For a laboratory document: a line holding a value beyond its critical limit is critical
    (critical.critical_values), and a critical value the lines leave out is added; then critical
    lines lead, as in lead_with_critical."""
    found = critical_values(doc)
    marked = []
    for ln in lines:
        spans_text = " ".join(doc[a:b] for a, b in ln.spans) or ln.text
        if critical_values(spans_text) and "critical_lab" not in ln.critical:
            ln = Line(ln.text, ln.spans, ln.origin, (*ln.critical, "critical_lab"))
        marked.append(ln)
    covered = {s for ln in marked for s in ln.spans}
    for c in found:
        if not any(a <= c.start < b or c.start <= a < c.end for a, b in covered):
            marked.append(Line(tidy(doc[c.start:c.end]), ((c.start, c.end),), "body", ("critical_lab",)))
            covered.add((c.start, c.end))
    return reassurance_last([ln for ln in marked if ln.critical]) + [ln for ln in marked if not ln.critical]
