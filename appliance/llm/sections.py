"""Report sections, found deterministically: the radiologist's own IMPRESSION or CONCLUSION is
kept whole and shown as such; FINDINGS is what a summary is written from, and what is cut (in
the middle, marked) when a report is longer than the model's context."""
from __future__ import annotations

import re
from dataclasses import dataclass

_HEADING = re.compile(
    r"(?im)(?:^|(?<=[.\n]\s)|(?<=[.\n]))\s*(?P<name>clinical history|history|indication|indications|reason for exam|"
    r"comparison|comparisons|technique|procedure|findings|finding|impression|impressions|conclusion|conclusions|"
    r"summary|recommendation|recommendations|opinion|assessment)\s*:")
_CANONICAL = {"history": "history", "clinical history": "history", "indication": "history",
              "indications": "history", "reason for exam": "history", "comparison": "comparison",
              "comparisons": "comparison", "technique": "technique", "procedure": "technique",
              "findings": "findings", "finding": "findings", "impression": "impression",
              "impressions": "impression", "conclusion": "impression", "conclusions": "impression",
              "summary": "impression", "opinion": "impression", "assessment": "impression",
              "recommendation": "recommendation", "recommendations": "recommendation"}


@dataclass(frozen=True)
class Section:
    name: str  # canonical: history, comparison, technique, findings, impression, recommendation, body
    start: int  # offsets of the section's text (after its heading) in the report
    end: int

    def text(self, report: str) -> str:
        return report[self.start:self.end].strip()


def split(report: str) -> list[Section]:
    """The report's sections in order; text before the first heading is "body"."""
    heads = list(_HEADING.finditer(report))
    out: list[Section] = []
    if not heads:
        return [Section("body", 0, len(report))]
    if report[:heads[0].start()].strip():
        out.append(Section("body", 0, heads[0].start()))
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(report)
        out.append(Section(_CANONICAL[m.group("name").lower()], m.end(), end))
    return out


def find(report: str, name: str) -> Section | None:
    return next((s for s in split(report) if s.name == name and s.text(report)), None)


def source_text(report: str) -> tuple[str, int]:
    """The text a summary is written from, and its offset in the report: FINDINGS where the
    report has them, otherwise everything but history, comparison and technique."""
    f = find(report, "findings")
    if f is not None:
        return report[f.start:f.end], f.start
    body = [s for s in split(report) if s.name in ("body", "impression", "recommendation")]
    if not body:
        return report, 0
    start, end = body[0].start, body[-1].end
    return report[start:end], start


def cut_middle(text: str, keep_chars: int) -> tuple[str, bool]:
    """`text` shortened to about `keep_chars` by removing whole sentences from its middle:
    the opening findings and the closing ones stay. Returns (text, truncated)."""
    if len(text) <= keep_chars:
        return text, False
    head = text[: keep_chars // 2]
    tail = text[len(text) - keep_chars // 2:]
    h = max(head.rfind(". "), head.rfind("\n"))
    t = min((i for i in (tail.find(". "), tail.find("\n")) if i >= 0), default=-1)
    head = head[: h + 1] if h > keep_chars // 8 else head
    tail = tail[t + 1:] if 0 <= t < keep_chars // 8 else tail
    return f"{head.rstrip()}\n[... middle of the report omitted ...]\n{tail.lstrip()}", True
