"""Summaries as the clinician sees them: a critical finding in a red banner and its lines in
bold, impression first, every flagged number, side or negation highlighted with the reason, a
stale summary marked. Pure functions (HTML strings)."""
from __future__ import annotations

from typing import Any

import html
import json
import re

FLAG_STYLE = "background-color:#ffe08a;border-bottom:2px solid #c77700"
FLAG_NOTE_STYLE = "color:#8a4b00;font-weight:bold"  # the reason beside the flagged words, at full size
SOURCE_LINK = "color:inherit;text-decoration:none"
CRITICAL_STYLE = "background:#b00020;color:#ffffff;padding:4px"
STALE_BANNER = ("<p style='background:#f6d6d6;padding:4px'><b>Stale:</b> this summary belongs to a report "
                "that has since been replaced (corrected or final result). Open the newer document.</p>")


_FLAG = re.compile(r'^(?P<kind>\w+): "(?P<text>.*)" - (?P<reason>.*)$', re.S)


def _flag_terms(flag: str) -> tuple[str, str]:
    """("2.1 cm", "not in the report") out of a stored flag, `kind: "text" - reason`
    (appliance.llm.grounding.Flag.render)."""
    m = _FLAG.match(flag)
    if not m:
        return "", flag
    return m.group("text"), m.group("reason")


def highlight(text: str, flags: list[str]) -> str:
    """Escaped text with each flagged term marked and its reason in a tooltip and a footnote."""
    out = html.escape(text)
    for flag in flags:
        term, reason = _flag_terms(flag)
        if term and html.escape(term) in out:
            out = out.replace(html.escape(term), f"<span style='{FLAG_STYLE}' title='{html.escape(reason)}'>"
                                                f"{html.escape(term)}</span> <span style='{FLAG_NOTE_STYLE}'>"
                                                f"&#9888; {html.escape(reason)}</span>", 1)
    return out.replace("\n", "<br>")


def summary_html(text: str, flags: list[str], structured_json: str = "", stale: bool = False) -> str:
    parts = [STALE_BANNER] if stale else []
    try:
        structured = json.loads(structured_json) if structured_json else {}
    except ValueError:
        structured = {}
    if isinstance(structured, dict) and structured.get("is_critical"):
        labels = sorted({str(c.get("label")) for c in structured.get("critical") or [] if isinstance(c, dict)})
        parts.append(f"<p style='{CRITICAL_STYLE}'><b>CRITICAL:</b> {html.escape(', '.join(labels))}</p>")
    impression = structured.get("impression") if isinstance(structured, dict) else None
    if impression:
        lines = impression if isinstance(impression, list) else [str(impression)]
        marked = _critical_lines(structured)
        sources = _sources(structured)
        lines = [x for x in lines if str(x) in marked] + [x for x in lines if str(x) not in marked]  # critical first
        parts.append("<h3>Impression</h3><p style='color:#555'>Click a line to see where the report says it."
                     "</p><ul>" + "".join(
            f"<li>{_linked(str(x), flags, sources, str(x) in marked)}</li>" for x in lines) + "</ul>")
        rest = [line for line in text.splitlines() if line.strip() and not any(str(x) in line for x in lines)
                and line.strip().upper() != "IMPRESSION:" and not line.startswith("CRITICAL: ")]
        if rest:
            parts.append("<h4>Details</h4><p>" + highlight("\n".join(rest), flags) + "</p>")
    else:
        parts.append("<p>" + highlight(text, flags) + "</p>")
    removed = structured.get("removed") if isinstance(structured, dict) else None
    if isinstance(removed, dict) and removed:
        n = sum(int(v) for v in removed.values() if isinstance(v, int))
        kinds = ", ".join(f"{html.escape(str(k))}: {int(v)}" for k, v in sorted(removed.items()) if isinstance(v, int))
        parts.append(f"<p style='color:#8a4b00'><b>Left out by the check against the report:</b> {n} "
                     f"statement(s) the report does not support ({kinds}); read the report for those points.</p>")
    if flags:
        parts.append("<p><b>Checks against the report:</b></p><ul>" +
                     "".join(f"<li>{html.escape(f)}</li>" for f in flags) + "</ul>")
    return "".join(parts)


def _sources(structured: dict[str, Any]) -> dict[str, list[tuple[int, int]]]:
    """Each summary line's spans in the de-identified report, as the summary stored them."""
    out: dict[str, list[tuple[int, int]]] = {}
    for ln in structured.get("lines") or []:
        if isinstance(ln, dict) and ln.get("spans"):
            try:
                out[str(ln.get("text"))] = [(int(a), int(b)) for a, b in ln["spans"]]
            except (TypeError, ValueError):
                continue
    return out


def _linked(line: str, flags: list[str], sources: dict[str, list[tuple[int, int]]], critical: bool) -> str:
    body = highlight(line, flags)
    if critical:
        body = f"<b style='color:#b00020'>{body}</b>"
    spans = sources.get(line)
    if not spans:
        return body
    href = "src:" + ",".join(f"{a}-{b}" for a, b in spans)
    return f"<a href='{href}' style='{SOURCE_LINK}'>{body}</a>"


def parse_source(href: str) -> list[tuple[int, int]]:
    """The spans of a "src:12-40,88-120" link."""
    if not href.startswith("src:"):
        return []
    out = []
    for part in href[4:].split(","):
        a, _, b = part.partition("-")
        if a.isdigit() and b.isdigit() and int(a) < int(b):
            out.append((int(a), int(b)))
    return out


def _critical_lines(structured: dict[str, Any]) -> set[str]:
    lines = structured.get("lines") or []
    return {str(ln.get("text")) for ln in lines if isinstance(ln, dict) and ln.get("critical")}


def streaming_html(partial: str) -> str:
    return "<p><i>Writing…</i></p><p>" + html.escape(partial).replace("\n", "<br>") + "</p>"


def cancelled_html() -> str:
    return ("<p><b>Summary cancelled.</b> Nothing more is being written for this document; "
            "request it again with Ctrl+R.</p>")
