"""Summary safety and quality, through the real pipeline (de-identification, the document's type,
the model, grounding: llm.pipeline.summarise_document, as the daemon runs it), in one run:

1. Every kind of document: ../shared/corpora/summaries-dev (120 reports: CT, MRI, US, XR, NM,
   pathology, ECG, echo, lab narratives, discharge summaries, progress notes, consults), scored
   by ../shared/tools/critical_probe.py: false reassurance, a normal first line on a critical
   report, key-term recall, numbers kept, side errors, invented drugs, doses and example phrases,
   identifiers. Reported for the whole set and for its two folds: "tune" (two of every three
   reports of each kind, in id order) is what the rules were written against, "held" (every
   third) was scored before it was looked at. Seconds per document (p50/p95) on this machine.
2. Open-i chest X-rays: the FINDINGS go in, the `impression` field is scored against the
   radiologist's own IMPRESSION (ROUGE-L with rouge-score; abnormal recall, observation F1 and
   invented rate from ../shared/tools/impression_metrics.py), beside the constant "No acute
   cardiopulmonary abnormality." and a ten-line extractive rule.

    python bench/summaries.py --model FILE.gguf [--part dev|openi|both] [--split validate] [--limit N]

The reports are read from ../shared at run time (Open-i is CC BY-NC-ND: measured, never copied).
Last line: one JSON object."""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import secrets
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"

from appliance.config import ModelConfig  # noqa: E402
from appliance.deid import deidentify  # noqa: E402
from appliance.domain import KnownIdentifiers  # noqa: E402
from appliance.llm.engine import open_engine  # noqa: E402
from appliance.llm.integrity import sha256_file  # noqa: E402
from appliance.llm.pipeline import summarise_document  # noqa: E402
from appliance.llm.summarise import NORMAL_CHEST  # noqa: E402

_NEG = re.compile(r"(?i)\b(?:no|not|without|negative|normal|clear|unremarkable|stable)\b")


def ten_line_rule(findings: str) -> str:
    """The baseline: findings sentences with no negation word, else the constant."""
    keep = [s.strip() for s in re.split(r"(?<=\.)\s+", findings) if s.strip() and not _NEG.search(s)]
    return " ".join(keep[:3]) or NORMAL_CHEST


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def folds(rows: list[dict]) -> dict[str, str]:
    """id -> "tune" or "held": every third report of each kind, in id order, is held."""
    by: dict[str, list[str]] = {}
    for r in rows:
        by.setdefault(r["kind"], []).append(r["id"])
    return {i: ("held" if n % 3 == 2 else "tune") for ids in by.values() for n, i in enumerate(sorted(ids))}


def run_dev(engine, cfg, limit: int) -> dict:
    """summaries-dev through the pipeline, scored by critical_probe.py; per fold and whole."""
    gold_path = SHARED / "corpora" / "summaries-dev" / "reports.jsonl"
    probe = _load(SHARED / "tools" / "critical_probe.py", "critical_probe")
    gold = [json.loads(x) for x in gold_path.read_text(encoding="utf-8").splitlines() if x.strip()]
    if limit:
        gold = gold[:limit]
    secret = secrets.token_bytes(32)
    preds: dict[str, dict] = {}
    secs: list[float] = []
    for g in gold:
        t = time.perf_counter()
        text = deidentify(g["text"], KnownIdentifiers(patient_key=g["id"]), secret).text
        r = summarise_document(engine, cfg, text, g["kind"])
        secs.append(time.perf_counter() - t)
        preds[g["id"]] = {"id": g["id"], "summary": r.structured, "text": r.text}
    phrases = probe.example_phrases(ROOT / "appliance" / "llm" / "prompt.py")
    fold = folds(gold)
    rows = []
    for g in gold:
        row = probe.score_one(g, preds[g["id"]], phrases)
        row["_phi"] = bool(g.get("phi"))
        row["_fold"] = fold[g["id"]]
        rows.append(row)
    keys = ("false_reassurance_critical", "false_reassurance_noncritical_abnormal", "normal_lead_critical",
            "must_recall_abnormal", "must_recall_critical", "numbers_kept", "side_errors", "invented_count",
            "invented_drugs", "invented_doses", "example_phrase_hits", "identifiers_leaked_text",
            "identifiers_leaked_record", "n", "n_critical", "n_abnormal")
    out: dict = {}
    print(f"{'set':<6} {'n':>4} {'crit':>4} {'FR_crit':>7} {'FR_abn':>6} {'lead':>4} {'recall_abn':>10} "
          f"{'recall_crit':>11} {'numbers':>8} {'side':>4} {'invented':>8} {'ex_phr':>6} {'phi':>3}")
    for name, part in (("all", rows), ("tune", [r for r in rows if r["_fold"] == "tune"]),
                       ("held", [r for r in rows if r["_fold"] == "held"])):
        ag = probe.aggregate(part)
        out[name] = {k: ag[k] for k in keys}
        print(f"{name:<6} {ag['n']:>4} {ag['n_critical']:>4} {ag['false_reassurance_critical']:>7} "
              f"{ag['false_reassurance_noncritical_abnormal']:>6} {ag['normal_lead_critical']:>4} "
              f"{str(ag['must_recall_abnormal']):>10} {str(ag['must_recall_critical']):>11} {ag['numbers_kept']:>8} "
              f"{ag['side_errors']:>4} {ag['invented_count']:>8} {ag['example_phrase_hits']:>6} "
              f"{ag['identifiers_leaked_text']:>3}")
    by_kind: dict[str, list[dict]] = {}
    for r in rows:
        by_kind.setdefault(r["kind"], []).append(r)
    out["by_kind_recall_abnormal"] = {k: probe.aggregate(v)["must_recall_abnormal"] for k, v in sorted(by_kind.items())}
    secs.sort()
    out["s_per_document_p50"] = round(secs[len(secs) // 2], 3)
    out["s_per_document_p95"] = round(secs[min(len(secs) - 1, int(len(secs) * 0.95))], 3)
    out["s_per_document_max"] = round(secs[-1], 3)
    out["model_calls"] = sum(1 for p in preds.values() if p["summary"].get("impression_source") == "model")
    print(f"seconds per document (de-identification + summary): p50 {out['s_per_document_p50']}, "
          f"p95 {out['s_per_document_p95']}, max {out['s_per_document_max']}; {out['model_calls']} needed the model")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("dev", "openi", "both"), default="both")
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--split", default="validate")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chronic", choices=("all", "likely", "none"), default="all",
                    help="model.chronic_in_impression: chronic findings of normal studies in the impression")
    args = ap.parse_args(argv)
    corpus = SHARED / "corpora" / "openi" / f"{args.split}.jsonl"
    tools = SHARED / "tools" / "impression_metrics.py"
    if not corpus.exists() or not tools.exists() or not (SHARED / "tools" / "critical_probe.py").exists():
        print(f"{corpus}, {tools} or critical_probe.py missing: this benchmark reads the shared corpora", file=sys.stderr)
        return 2
    cfg = ModelConfig(path=args.model, n_threads=args.threads, n_gpu_layers=0, n_ctx=2048,
                      chronic_in_impression=args.chronic)
    engine = open_engine(cfg, sha256_file(args.model))
    figures: dict = {"model": engine.info.name, "device": engine.info.device, "threads": args.threads,
                     "chronic_in_impression": args.chronic}
    if args.part in ("dev", "both"):
        print("== every kind of document: summaries-dev, critical_probe.py ==")
        figures["summaries_dev"] = run_dev(engine, cfg, args.limit)
    if args.part in ("openi", "both"):
        print("== chest X-rays: Open-i " + args.split + " ==")
        figures["openi"] = run_openi(engine, cfg, corpus, tools, args.limit)
    print(json.dumps(figures))
    engine.close()
    return 0


def run_openi(engine, cfg, corpus: Path, tools: Path, limit: int) -> dict:
    im = _load(tools, "impression_metrics")
    from rouge_score import rouge_scorer
    rs = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rows = [json.loads(x) for x in corpus.read_text(encoding="utf-8").splitlines() if x.strip()]
    if limit:
        rows = rows[:limit]
    cancel = threading.Event()

    systems: dict[str, list[dict]] = {"appliance": [], "constant": [], "ten_line_rule": []}
    flags = 0
    model_secs = []
    total = time.perf_counter()
    for row in rows:
        report = "FINDINGS: " + row["inputs"]
        t = time.perf_counter()
        r = summarise_document(engine, cfg, report, "dicom:basic-text-sr", cancel=cancel)
        secs = time.perf_counter() - t
        if r.model_called:
            model_secs.append(secs)
        flags += len(r.flags)
        cand = " ".join(r.structured["impression"])  # type: ignore[arg-type]
        for name, c in (("appliance", cand), ("constant", NORMAL_CHEST), ("ten_line_rule", ten_line_rule(row["inputs"]))):
            systems[name].append({"reference": row["target"], "candidate": c, "source": row["inputs"],
                                  "rougeL": rs.score(row["target"], c)["rougeL"].fmeasure})
    wall = time.perf_counter() - total
    figures: dict = {"corpus": corpus.name, "reports": len(rows)}
    print(f"{'system':<14} {'ROUGE-L':>7} {'abn.recall':>10} {'obs.F1':>7} {'invented':>8}")
    for name, pairs in systems.items():
        m = im.score(pairs)
        rouge = 100 * sum(p["rougeL"] for p in pairs) / max(len(pairs), 1)
        figures[name] = {"rougeL": round(rouge, 1), "abnormal_recall": m["abnormal_recall"],
                         "observation_f1": m["observation_f1"], "invented_rate": m["invented_rate"]}
        print(f"{name:<14} {rouge:7.1f} {m['abnormal_recall']:10.3f} {m['observation_f1']:7.3f} {m['invented_rate']:8.3f}")
    figures["appliance"]["grounding_flags"] = flags
    figures["appliance"]["s_per_report"] = round(wall / max(len(rows), 1), 2)
    figures["appliance"]["s_per_model_summary"] = round(sum(model_secs) / max(len(model_secs), 1), 2)
    figures["appliance"]["model_calls"] = len(model_secs)
    print(f"{len(model_secs)} reports needed the model ({figures['appliance']['s_per_model_summary']} s each); "
          f"{wall / max(len(rows), 1):.2f} s per report overall; {flags} grounding flags")
    return figures


if __name__ == "__main__":
    sys.exit(main())
