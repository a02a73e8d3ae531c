"""Patient-grouped cross-validation of the whole de-identification engine (rules + learned
tagger): the figure to quote, because no note is scored by a model that saw its patient.

    python bench/deid_cv.py [--corpus GOLD.jsonl] [--extra TRAIN_ONLY.jsonl ...] [--folds 5]

Patients are dealt into folds by a fixed shuffle; for each fold the tagger is trained on the
other folds (plus --extra corpora, which are never scored) and the engine is scored on the held
fold with the shared token-level scorer. Last line: one JSON object.

Caveat, stated with every figure: the rule recognisers were written while reading the whole
shared half, so only the learned part is truly held out here."""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from deid_metrics import score_corpus  # noqa: E402

from appliance.deid.engine import find_spans, learned_spans, rule_spans  # noqa: E402
from appliance.deid.learned.tagger import THRESHOLD, Tagger  # noqa: E402
from appliance.deid.learned.train import load, train  # noqa: E402
from appliance.domain import KnownIdentifiers  # noqa: E402

SHARED = ROOT.parent / "shared" / "corpora" / "deid"


def patient(doc: dict) -> str:
    return str(doc.get("patient") or doc["id"].rsplit("-", 1)[0])


def folds(docs: list[dict], k: int, seed: int) -> list[list[dict]]:
    patients = sorted({patient(d) for d in docs})
    random.Random(seed).shuffle(patients)
    fold_of = {p: i % k for i, p in enumerate(patients)}
    out: list[list[dict]] = [[] for _ in range(k)]
    for d in docs:
        out[fold_of[patient(d)]].append(d)
    return out


def spans_json(spans) -> list[dict]:
    return [{"start": s.start, "end": s.end} for s in spans]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=SHARED / "physionet-nursing-notes.jsonl")
    ap.add_argument("--extra", type=Path, nargs="*", default=[SHARED / "presidio-synthetic.jsonl"])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--threshold", type=float, nargs="*", default=[THRESHOLD])
    args = ap.parse_args(argv)
    if not args.corpus.exists():
        print(f"corpus {args.corpus} not found: the shared corpora live in ../shared/corpora/deid", file=sys.stderr)
        return 2
    docs = load(args.corpus)
    extra = [d for p in args.extra if p.exists() for d in load(p)]
    parts = folds(docs, args.folds, args.seed)
    per_fold: list[dict] = []
    pooled: dict[float, dict] = {t: {} for t in args.threshold}
    rules_only: dict = {}
    learned_only: dict = {}
    secs = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i, held in enumerate(parts):
            train_docs = [d for j, p in enumerate(parts) if j != i for d in p] + extra
            model = Path(tmp) / f"fold{i}.model"
            train(train_docs, model)
            row: dict = {"fold": i, "docs": len(held), "patients": len({patient(d) for d in held})}
            for t in args.threshold:
                tagger = Tagger(model, None, threshold=t)
                start = time.perf_counter()
                pred = {d["id"]: spans_json(find_spans(d["text"], KnownIdentifiers(), tagger=tagger)) for d in held}
                if t == args.threshold[0]:
                    secs += time.perf_counter() - start
                if t == args.threshold[0]:
                    lp = {d["id"]: spans_json(learned_spans(d["text"], KnownIdentifiers(), tagger=tagger))
                          for d in held}
                    learned_only.update(lp)
                    lm = score_corpus(held, lp)
                    row["learned_only"] = {"recall": round(lm["recall"], 4), "precision": round(lm["precision"], 4)}
                tagger.close()
                pooled[t].update(pred)
                m = score_corpus(held, pred)
                row[f"t{t}"] = {"recall": round(m["recall"], 4), "precision": round(m["precision"], 4)}
            rules_pred = {d["id"]: spans_json(rule_spans(d["text"], KnownIdentifiers())) for d in held}
            rules_only.update(rules_pred)
            rm = score_corpus(held, rules_pred)
            row["rules_only"] = {"recall": round(rm["recall"], 4), "precision": round(rm["precision"], 4)}
            per_fold.append(row)
            print(json.dumps(row), flush=True)
    figures: dict = {"corpus": args.corpus.name, "folds": args.folds, "docs": len(docs),
                     "extra_training": [p.name for p in args.extra if p.exists()], "per_fold": per_fold}
    for t in args.threshold:
        m = score_corpus(docs, pooled[t])
        key = "" if t == args.threshold[0] else f"_t{t}"
        figures[f"cv_recall{key}"] = round(m["recall"], 4)
        figures[f"cv_precision{key}"] = round(m["precision"], 4)
        if not key:
            figures["cv_recall_by_label"] = {k: round(v["recall"], 4) for k, v in m["recall_by_label"].items()}
            figures["cv_fold_mean_recall"] = round(sum(r[f"t{t}"]["recall"] for r in per_fold) / len(per_fold), 4)
            figures["cv_fold_mean_precision"] = round(
                sum(r[f"t{t}"]["precision"] for r in per_fold) / len(per_fold), 4)
    rm = score_corpus(docs, rules_only)
    figures["rules_only_recall"] = round(rm["recall"], 4)
    figures["rules_only_precision"] = round(rm["precision"], 4)
    lm = score_corpus(docs, learned_only)
    figures["learned_only_recall"] = round(lm["recall"], 4)
    figures["learned_only_precision"] = round(lm["precision"], 4)
    figures["learned_only_recall_by_label"] = {k: round(v["recall"], 4) for k, v in lm["recall_by_label"].items()}
    figures["threshold"] = args.threshold[0]
    figures["notes_per_s"] = round(len(docs) / secs, 1) if secs else 0.0
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
