"""Build the learned tagger from gold de-identification corpora (never run by the daemon).

    python -m appliance.deid.learned.train [CORPUS.jsonl ...] [--out appliance/deid/data/deid_crf.model]

Corpora are the shared JSONL format ({"id", "text", "spans": [{"start", "end", "label"}]}); by
default the PhysioNet nursing notes and the Presidio synthetic sentences in ../shared. The same
inputs and parameters give the same model file; its SHA-256 is written beside it and pinned."""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any
from collections.abc import Iterable

import pycrfsuite

from ...domain import KnownIdentifiers, Span
from .features import featurize, rule_labels, tokens

# Gold labels -> the engine's labels (so a surrogate of the right kind replaces them). Labels
# that are no Safe Harbor identifier (a title, a nationality, an age under 90) train as "O".
GOLD_LABELS = {
    "HCPName": "NAME", "PTName": "NAME", "PTNameInitial": "NAME", "RelativeProxyName": "NAME", "PERSON": "NAME",
    "Location": "LOCATION", "GPE": "LOCATION", "ORGANIZATION": "LOCATION", "STREET_ADDRESS": "ADDRESS",
    "Date": "DATE", "DateYear": "DATE", "DATE_TIME": "DATE", "Phone": "PHONE", "PHONE_NUMBER": "PHONE",
    "Age": "AGE", "Other": "ID", "CREDIT_CARD": "ID", "US_SSN": "ID", "US_DRIVER_LICENSE": "ID", "IBAN_CODE": "ID",
    "EMAIL_ADDRESS": "ID", "DOMAIN_NAME": "ID", "IP_ADDRESS": "ID", "ZIP_CODE": "ID",
}
PARAMS = {"c1": 0.05, "c2": 0.01, "max_iterations": 150, "feature.possible_transitions": True}
SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "corpora" / "deid"
DEFAULT_CORPORA = [SHARED / "physionet-nursing-notes.jsonl", SHARED / "presidio-synthetic.jsonl"]
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "data" / "deid_crf.model"


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def rule_spans(text: str) -> list[Span]:
    from ..engine import hard_spans  # late: the engine imports the tagger
    return hard_spans(text, KnownIdentifiers())


def sequence(doc: dict[str, Any]) -> tuple[list[list[str]], list[str]]:
    text = doc["text"]
    toks = tokens(text)
    gold = ["O"] * len(toks)
    for s in doc.get("spans", []):
        label = GOLD_LABELS.get(s["label"], "O")
        if label == "O":
            continue
        for i, (a, b) in enumerate(toks):
            if a < s["end"] and b > s["start"] and text[a].isalnum():
                gold[i] = label
    return featurize(text, toks, rule_labels(toks, rule_spans(text))), gold


def case_variants(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each document as written, in capitals and in lower case: notes arrive typed all three
    ways, and a tagger that learnt names from their capital letters misses them in an ALL-CAPS
    note. Offsets hold where the case change keeps the length (it does for all but a few
    letters, such as the German sharp s; those copies are skipped)."""
    out: list[dict[str, Any]] = []
    for d in docs:
        out.append(d)
        for suffix, change in (("upper", str.upper), ("lower", str.lower)):
            text = change(d["text"])
            if text != d["text"] and len(text) == len(d["text"]):
                out.append({**d, "id": f"{d['id']}-{suffix}", "text": text})
    return out


def train(docs: Iterable[dict[str, Any]], out: Path, params: dict[str, Any] | None = None) -> str:
    trainer = pycrfsuite.Trainer(verbose=False)
    trainer.set_params({**PARAMS, **(params or {})})
    for d in docs:
        xs, ys = sequence(d)
        if xs:
            trainer.append(xs, ys)
    out.parent.mkdir(parents=True, exist_ok=True)
    trainer.train(str(out))
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    out.with_suffix(".sha256").write_text(f"{digest}  {out.name}\n", encoding="ascii")
    return digest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpora", nargs="*", type=Path, default=DEFAULT_CORPORA)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--case-variants", action="store_true", help="also train on each note in capitals and lower case")
    args = ap.parse_args(argv)
    missing = [str(p) for p in args.corpora if not p.exists()]
    if missing:
        print(f"corpus not found: {', '.join(missing)} (the shared corpora live in ../shared/corpora/deid)",
              file=sys.stderr)
        return 2
    docs = [d for p in args.corpora for d in load(p)]
    if args.case_variants:
        docs = case_variants(docs)
    digest = train(docs, args.out)
    print(f"{args.out}: {len(docs)} documents, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
