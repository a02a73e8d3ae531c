"""What de-identification takes away from clinical meaning: on reports of every kind (the dev
set of summaries-dev: CT, MRI, X-ray, pathology, ECG, echo, labs, discharge, progress and
nursing notes), every key term, measurement, side, drug name and sex or age word is checked
against the spans the engine replaces. Also the share of the listed identifiers removed. No
declared identifiers are passed: the engine sees each report as an unseen note.

    python bench/deid_meaning.py [--reports FILE.jsonl] [--show]

Last line: one JSON object. A term counts as altered when any replaced span overlaps any of its
occurrences; drugs are the report's words in the packaged drug list or of a drug's INN shape,
so this also checks that protection holds in context."""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from appliance.deid import find_spans  # noqa: E402
from appliance.deid.drugs import is_drug  # noqa: E402
from appliance.domain import KnownIdentifiers  # noqa: E402

SHARED = ROOT.parent / "shared" / "corpora" / "summaries-dev" / "reports.jsonl"
LOCAL = ROOT / "tests" / "data" / "summaries-dev" / "reports.jsonl"
SEX_AGE = re.compile(r"(?i)\b(?:man|woman|men|women|male|female|boy|girl|gentleman|lady|he|she|his|her|him|"
                     r"year[- ]old|years? old|yo|y/o|\d{1,3} ?(?:yo|y/o|[MF])\b)")


def occurrences(text: str, term: str) -> list[tuple[int, int]]:
    pat = re.compile(r"(?<![\w])" + re.escape(term) + r"(?![\w])", re.IGNORECASE)
    return [(m.start(), m.end()) for m in pat.finditer(text)]


def altered(spans, occ: list[tuple[int, int]]) -> bool:
    return any(s.start < b and a < s.end for a, b in occ for s in spans)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reports", type=Path, default=SHARED if SHARED.exists() else LOCAL)
    ap.add_argument("--show", action="store_true", help="print each altered term with its report id")
    args = ap.parse_args(argv)
    docs = [json.loads(ln) for ln in args.reports.read_text(encoding="utf-8").splitlines() if ln.strip()]
    find_spans("warm up", KnownIdentifiers())
    counts = {k: [0, 0] for k in ("key_terms", "numbers", "sides", "drugs", "sex_age_words")}  # [checked, altered]
    phi = [0, 0]
    shown: list[str] = []
    t = time.perf_counter()
    for d in docs:
        text = d["text"]
        spans = find_spans(text, KnownIdentifiers())
        groups = {"key_terms": d.get("must", []), "numbers": d.get("numbers", []), "sides": d.get("sides", []),
                  "drugs": sorted({w for w in re.findall(r"[A-Za-z]{4,}", text) if is_drug(w)}),
                  "sex_age_words": sorted({m.group() for m in SEX_AGE.finditer(text)})}
        for kind, terms in groups.items():
            for term in terms:
                occ = occurrences(text, term)
                if not occ:
                    continue
                counts[kind][0] += 1
                if altered(spans, occ):
                    counts[kind][1] += 1
                    shown.append(f"{d['id']} {kind}: {term!r}")
        for item in d.get("phi", []):
            occ = occurrences(text, item)
            if occ:
                phi[0] += 1
                phi[1] += all(any(s.start <= a and b <= s.end for s in spans) for a, b in occ)
    secs = time.perf_counter() - t
    if args.show:
        print("\n".join(shown) or "nothing altered")
    figures = {"reports": len(docs), "source": args.reports.name,
               **{f"{k}_altered": v[1] for k, v in counts.items()},
               **{f"{k}_checked": v[0] for k, v in counts.items()},
               "listed_identifiers_removed": round(phi[1] / phi[0], 3) if phi[0] else None,
               "listed_identifiers": phi[0], "notes_per_s": round(len(docs) / secs, 1)}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
