"""The appliance's ConText (appliance/llm/context.py) against medspaCy's ConText and its PyRuSH
sentence splitter on the same concept mentions: every mention of a critical finding
(appliance/llm/critical.py's names) in the 120 summaries-dev reports, outside the sections that
give the reason for the study. Each labeller decides which mentions are asserted; a report is
called critical when one is. Scored against the reports' own critical flag, in one run, with
the time each takes.

    python -m venv /tmp/msv && /tmp/msv/bin/pip install medspacy==1.3.1
    /tmp/msv/bin/python bench/context_vs_medspacy.py

(medspaCy is measured from a venv of its own: it brings spaCy and about sixty packages, which
the appliance does not ship.) Last line: one JSON object."""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
GOLD = ROOT / "tests" / "data" / "summaries-dev" / "reports.jsonl"

from appliance.llm.context import assertion  # noqa: E402
from appliance.llm.critical import mentions as critical_mentions  # noqa: E402


def mentions(text: str) -> list[tuple[str, int, int, int, int]]:
    """(class, sentence start, sentence end, mention start, mention end), in report offsets:
    the appliance's own candidates (critical.mentions), before either reader judges them."""
    return [(cls, a, b, a + m.start(), a + m.end()) for cls, a, b, m in critical_mentions(text)]


def ours(text: str, found: list[tuple[str, int, int, int, int]]) -> list[bool]:
    return [assertion(text[a:b], s - a, e - a).asserted for _c, a, b, s, e in found]


def theirs(nlp, text: str, found: list[tuple[str, int, int, int, int]]) -> list[bool]:
    """medspaCy's PyRuSH sentences and ConText with its default rules on the same spans."""
    doc = nlp(text)
    spans, index = [], []
    for i, (_c, _a, _b, s, e) in enumerate(found):
        span = doc.char_span(s, e, label="CRITICAL", alignment_mode="expand")
        if span is not None and not any(span.start < x.end and x.start < span.end for x in spans):
            spans.append(span)
            index.append(i)
    doc.ents = spans
    doc = nlp.get_pipe("medspacy_context")(doc)
    out = [False] * len(found)
    by_start = {e.start_char: e for e in doc.ents}
    for i, span in zip(index, spans):
        ent = by_start[span.start_char]
        # Uncertain ("possible", "cannot exclude") stays asserted: a critical finding that may be
        # there leads the summary, as in the appliance.
        out[i] = not (ent._.is_negated or ent._.is_historical or ent._.is_hypothetical or ent._.is_family)
    # A mention medspaCy could not place (overlapping another) counts as its neighbour's.
    for i in range(len(found)):
        if i not in index:
            same = [j for j in index if found[j][1] == found[i][1]]
            out[i] = any(out[j] for j in same)
    return out


def score(pred: dict[str, bool], gold: dict[str, bool]) -> dict[str, float | int]:
    tp = sum(pred[i] and gold[i] for i in gold)
    fp = sum(pred[i] and not gold[i] for i in gold)
    fn = sum(gold[i] and not pred[i] for i in gold)
    return {"critical_found": tp, "critical_missed": fn, "false_alarms": fp,
            "sensitivity": round(tp / (tp + fn), 3) if tp + fn else 1.0,
            "precision": round(tp / (tp + fp), 3) if tp + fp else 1.0}


def main() -> int:
    try:
        import medspacy
    except ImportError:
        print("medspacy is not installed here: see this file's docstring", file=sys.stderr)
        return 2
    logging.disable(logging.CRITICAL)
    try:
        from loguru import logger
        logger.remove()
    except ImportError:
        pass
    rows = [json.loads(x) for x in GOLD.read_text(encoding="utf-8").splitlines() if x.strip()]
    gold = {r["id"]: bool(r["critical"]) for r in rows}
    found = {r["id"]: mentions(r["text"]) for r in rows}
    t = time.perf_counter()
    mine = {r["id"]: ours(r["text"], found[r["id"]]) for r in rows}
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    nlp = medspacy.load()
    t_load = time.perf_counter() - t
    t = time.perf_counter()
    med = {r["id"]: theirs(nlp, r["text"], found[r["id"]]) for r in rows}
    t_med = time.perf_counter() - t
    n = sum(len(v) for v in found.values())
    agree = sum(a == b for i in found for a, b in zip(mine[i], med[i]))
    figures = {"reports": len(rows), "critical_reports": sum(gold.values()), "mentions": n,
               "mentions_agreeing": agree,
               "appliance": {**score({i: any(v) for i, v in mine.items()}, gold), "seconds": round(t_ours, 3)},
               "medspacy": {**score({i: any(v) for i, v in med.items()}, gold), "seconds": round(t_med, 3),
                            "load_seconds": round(t_load, 2), "version": medspacy.__version__}}
    print(f"{'labeller':<10} {'found':>5} {'missed':>6} {'false alarms':>12} {'sensitivity':>11} {'precision':>9} {'s':>6}")
    for name in ("appliance", "medspacy"):
        f = figures[name]
        print(f"{name:<10} {f['critical_found']:>5} {f['critical_missed']:>6} {f['false_alarms']:>12} "
              f"{f['sensitivity']:>11} {f['precision']:>9} {f['seconds']:>6}")
    differ = [(i, found[i][k][0], a, b) for i in found for k, (a, b) in enumerate(zip(mine[i], med[i])) if a != b]
    print(f"{agree} of {n} mentions labelled alike; where they differ (report, class, appliance, medspacy):")
    for d in differ[:20]:
        print("  ", d)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
