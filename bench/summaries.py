"""Summary quality on Open-i chest X-rays: the FINDINGS go in, the `impression` field of the
structured summary is scored against the radiologist's own IMPRESSION, beside the constant
"No acute cardiopulmonary abnormality." and a ten-line extractive rule, in the same run.

    python bench/summaries.py [--model FILE.gguf] [--split validate] [--limit N] [--threads 2]

Scores: ROUGE-L F1 x100 (PyPI rouge-score, stemming on); from ../shared/tools/impression_metrics.py
abnormal recall, observation F1 and invented rate; grounding flags; seconds per report. The
reports are read from ../shared at run time (CC BY-NC-ND: measured, never copied). Last line:
one JSON object."""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"

from appliance.config import ModelConfig  # noqa: E402
from appliance.llm.engine import open_engine  # noqa: E402
from appliance.llm.integrity import sha256_file  # noqa: E402
from appliance.llm.summarise import NORMAL_CHEST, summarise  # noqa: E402

_NEG = re.compile(r"(?i)\b(?:no|not|without|negative|normal|clear|unremarkable|stable)\b")


def ten_line_rule(findings: str) -> str:
    """The baseline: findings sentences with no negation word, else the constant."""
    keep = [s.strip() for s in re.split(r"(?<=\.)\s+", findings) if s.strip() and not _NEG.search(s)]
    return " ".join(keep[:3]) or NORMAL_CHEST


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--split", default="validate")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chronic", choices=("all", "likely", "none"), default="all",
                    help="model.chronic_in_impression: chronic findings of normal studies in the impression")
    ap.add_argument("--out", type=Path, default=None, help="write the candidate impressions here (JSONL)")
    args = ap.parse_args(argv)
    corpus = SHARED / "corpora" / "openi" / f"{args.split}.jsonl"
    tools = SHARED / "tools" / "impression_metrics.py"
    if not corpus.exists() or not tools.exists():
        print(f"{corpus} or {tools} missing: this benchmark reads the shared corpora", file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location("impression_metrics", tools)
    im = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(im)  # type: ignore[union-attr]
    from rouge_score import rouge_scorer
    rs = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rows = [json.loads(x) for x in corpus.read_text(encoding="utf-8").splitlines() if x.strip()]
    if args.limit:
        rows = rows[: args.limit]
    engine = open_engine(ModelConfig(path=args.model, n_threads=args.threads, n_gpu_layers=0, n_ctx=2048),
                         sha256_file(args.model))
    cancel = threading.Event()

    def gen(prompt, c):
        return engine.chat(prompt.messages, grammar=prompt.grammar, max_tokens=160, cancel=c)

    systems: dict[str, list[dict]] = {"appliance": [], "constant": [], "ten_line_rule": []}
    flags = 0
    model_secs = []
    total = time.perf_counter()
    out = args.out.open("w", encoding="utf-8") if args.out else None
    for row in rows:
        report = "FINDINGS: " + row["inputs"]
        t = time.perf_counter()
        r = summarise(report, "dicom:basic-text-sr", gen, cancel=cancel, model=engine.info.name,
                      opens_think=engine.info.opens_think, chronic=args.chronic)
        secs = time.perf_counter() - t
        if r.model_called:
            model_secs.append(secs)
        flags += len(r.flags)
        cand = " ".join(r.structured["impression"])  # type: ignore[arg-type]
        if out:
            out.write(json.dumps({"idx": row["idx"], "impression": cand, "flags": [f.render() for f in r.flags]}) + "\n")
        for name, c in (("appliance", cand), ("constant", NORMAL_CHEST), ("ten_line_rule", ten_line_rule(row["inputs"]))):
            systems[name].append({"reference": row["target"], "candidate": c, "source": row["inputs"],
                                  "rougeL": rs.score(row["target"], c)["rougeL"].fmeasure})
    wall = time.perf_counter() - total
    figures: dict = {"corpus": corpus.name, "reports": len(rows), "model": engine.info.name,
                     "device": engine.info.device, "threads": args.threads}
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
    figures["chronic_in_impression"] = args.chronic
    print(json.dumps(figures))
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
