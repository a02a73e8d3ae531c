"""Leave-one-corpus-out: train the learned tagger without a corpus, score the whole engine on
that corpus. Three corpora of different kinds: PhysioNet nursing notes (gold spans), Presidio
synthetic sentences (gold spans) and the summaries-dev reports of every kind (gold = every
occurrence of each identifier the report lists). Each is scored by a tagger trained on the
other two, with and without the case variants (each training note also in capitals and lower
case). Last line: one JSON object.

    python bench/deid_loco.py [--quick]

Caveat, stated with the figures: the rule recognisers were written while reading all three
corpora, so only the tagger is truly held out here; a corpus nobody read is the held-back set."""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from deid_metrics import score_corpus  # noqa: E402

from appliance.deid.engine import find_spans  # noqa: E402
from appliance.deid.learned.tagger import Tagger  # noqa: E402
from appliance.deid.learned.train import case_variants, load, train  # noqa: E402
from appliance.domain import KnownIdentifiers  # noqa: E402

SHARED = ROOT.parent / "shared" / "corpora"
LOCAL_DEV = ROOT / "tests" / "data" / "summaries-dev" / "reports.jsonl"


def dev_gold(path: Path) -> list[dict]:
    docs = []
    for d in load(path):
        spans = [{"start": m.start(), "end": m.end(), "label": "PHI"} for item in d.get("phi", [])
                 for m in re.finditer(re.escape(item), d["text"], re.IGNORECASE)]
        docs.append({"id": d["id"], "text": d["text"], "spans": spans})
    return docs


def corpora() -> dict[str, list[dict]]:
    dev = SHARED / "summaries-dev" / "reports.jsonl"
    out = {"physionet": load(SHARED / "deid" / "physionet-nursing-notes.jsonl"),
           "presidio": load(SHARED / "deid" / "presidio-synthetic.jsonl"),
           "dev_reports": dev_gold(dev if dev.exists() else LOCAL_DEV)}
    return out


def score(docs: list[dict], model: Path) -> dict:
    tagger = Tagger(model, None)
    pred = {d["id"]: [{"start": s.start, "end": s.end} for s in find_spans(d["text"], KnownIdentifiers(), tagger=tagger)]
            for d in docs}
    tagger.close()
    r = score_corpus(docs, pred)
    return {"recall": round(r["recall"], 4), "precision": round(r["precision"], 4), "fn": r["fn"], "fp": r["fp"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="without the case-variant runs")
    args = ap.parse_args(argv)
    if not (SHARED / "deid").exists():
        print("the shared corpora are not here (../shared/corpora/deid)", file=sys.stderr)
        return 2
    data = corpora()
    figures: dict = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for held, docs in data.items():
            train_docs = [d for name, ds in data.items() if name != held for d in ds]
            for variant in ([False] if args.quick else [False, True]):
                model = Path(tmp) / f"{held}-{variant}.model"
                train(case_variants(train_docs) if variant else train_docs, model)
                key = f"{held}{'_casevariants' if variant else ''}"
                figures[key] = score(docs, model)
                print(key, figures[key], flush=True)
    figures["seconds"] = round(time.perf_counter() - t0)
    figures["caveat"] = "rules written while reading all three corpora; only the tagger is held out"
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
