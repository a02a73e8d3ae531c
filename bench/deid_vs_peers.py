"""De-identification benchmark: this engine vs Philter (philter-lite) and Presidio on the same
corpus, in one run, scored by the same token-level metric. Last line: one JSON object.

    python bench/deid_vs_peers.py [--corpus GOLD.jsonl] [--peers-python .venv-peers/bin/python]

Peers run in their own venv (`make bench-peers` builds it), each in a worker process that is
killed and restarted when a document exceeds --timeout seconds (Philter's regexes can
backtrack for 30 s+ on ALL-CAPS notes); such a document counts as nothing found."""
from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from deid_metrics import score_corpus  # noqa: E402

from appliance.deid import find_spans  # noqa: E402
from appliance.domain import KnownIdentifiers  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "corpora" / "deid" / "physionet-nursing-notes.jsonl"
FALLBACK = ROOT / "tests" / "data" / "deid" / "physionet-nursing-notes-first300.jsonl"


def run_ours(docs: list[dict]) -> tuple[dict, float]:
    find_spans("warm up the dictionaries", KnownIdentifiers())
    t = time.perf_counter()
    pred = {d["id"]: [{"start": s.start, "end": s.end} for s in find_spans(d["text"], KnownIdentifiers())]
            for d in docs}
    return pred, time.perf_counter() - t


class Worker:
    def __init__(self, python: str, peer: str) -> None:
        env = {**os.environ, "NLTK_DATA": str(Path(python).resolve().parent.parent / "nltk_data")}
        self.args = [python, str(ROOT / "bench" / "deid_peer_worker.py"), peer]
        self.env = env
        self.start()

    def start(self) -> None:
        self.p = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, env=self.env)
        line = self.p.stdout.readline()
        if not line:
            raise SystemExit(f"peer worker {self.args[-1]} failed to start")

    def ask(self, doc: dict, timeout: float):
        self.p.stdin.write(json.dumps({"id": doc["id"], "text": doc["text"]}) + "\n")
        self.p.stdin.flush()
        ready, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not ready:
            self.p.kill()
            self.p.wait()
            self.start()
            return None
        return json.loads(self.p.stdout.readline())["spans"]

    def close(self) -> None:
        self.p.kill()
        self.p.wait()


def run_peer(python: str, peer: str, docs: list[dict], timeout: float) -> tuple[dict, float, int]:
    w = Worker(python, peer)
    pred, timeouts, busy = {}, 0, 0.0
    for d in docs:
        t = time.perf_counter()
        spans = w.ask(d, timeout)
        busy += time.perf_counter() - t
        if spans is None:
            timeouts += 1
            spans = []
        pred[d["id"]] = spans
    w.close()
    return pred, busy, timeouts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=DEFAULT if DEFAULT.exists() else FALLBACK)
    ap.add_argument("--peers-python", default=str(ROOT / ".venv-peers" / "bin" / "python"))
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args(argv)
    docs = [json.loads(x) for x in args.corpus.read_text(encoding="utf-8").splitlines() if x.strip()]
    if args.limit:
        docs = docs[: args.limit]
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the goal says
    results = {}
    pred, secs = run_ours(docs)
    results["appliance"] = (score_corpus(docs, pred), secs, 0)
    if Path(args.peers_python).exists():
        for peer in ("philter", "presidio"):
            p, s, to = run_peer(args.peers_python, peer, docs, args.timeout)
            results[peer] = (score_corpus(docs, p), s, to)
    else:
        print(f"peers venv {args.peers_python} missing: run `make bench-peers`", file=sys.stderr)
    print(f"corpus: {args.corpus.name}, {len(docs)} documents, one core")
    print(f"{'system':<10} {'recall':>7} {'precision':>9} {'F2':>6} {'docs/s':>8} {'timeouts':>8}")
    figures = {"corpus": args.corpus.name, "docs": len(docs)}
    for name, (m, s, to) in results.items():
        rate = len(docs) / s if s else 0.0
        print(f"{name:<10} {m['recall']:7.4f} {m['precision']:9.4f} {m['f2']:6.4f} {rate:8.1f} {to:8d}")
        figures[name] = {"recall": round(m["recall"], 4), "precision": round(m["precision"], 4),
                         "f2": round(m["f2"], 4), "docs_per_s": round(rate, 1), "timeouts": to,
                         "recall_by_label": {k: round(v["recall"], 4) for k, v in m["recall_by_label"].items()}}
    ours = figures["appliance"]
    for peer in ("philter", "presidio"):
        if peer in figures and figures[peer]["docs_per_s"]:
            r = ours["docs_per_s"] / figures[peer]["docs_per_s"]
            figures[f"speed_ratio_vs_{peer}"] = round(r, 1)
            print(f"appliance vs {peer}: {r:.1f}x faster, recall {ours['recall'] - figures[peer]['recall']:+.4f}, "
                  f"precision {ours['precision'] - figures[peer]['precision']:+.4f}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
