"""`appliancectl summarize`: the daemon's summary pipeline offline, on a JSONL file.

IN lines {"id", "text"[, "kind"]}; OUT lines {"id", "summary": {...structured...}, "text": "..."}.
The same steps as the daemon, through the same call (llm.pipeline.summarise_document): de-
identification, the document's type from its content, the prompt, the model under its grammar,
grounding, with the config's model settings, chronic-findings policy and the site's worked
examples. The model is the config's pinned one, or --model FILE.gguf (checked, not pinned)."""
from __future__ import annotations

import json
import secrets
import sys
import threading
from pathlib import Path

from ..config import ModelConfig
from ..deid import deidentify
from ..domain import KnownIdentifiers
from ..llm.engine import open_engine
from ..llm.integrity import sha256_file, verify_model
from ..llm.pipeline import summarise_document
from .batch import BadRow, Tally, done_ids, error_record, rows


def run_summarize_jsonl(src: Path, out: Path, cfg: ModelConfig, model: Path | None,
                        examples: tuple[tuple[list[str], str], ...] = (), resume: bool = False) -> Tally:
    if model is not None:
        cfg = ModelConfig(**{**cfg.__dict__, "path": model})
        sha = sha256_file(model)
    else:
        sha = verify_model(cfg.path, cfg.sha256)
    engine = open_engine(cfg, sha)
    secret = secrets.token_bytes(32)
    cancel = threading.Event()
    tally = Tally()
    skip = done_ids(out) if resume else set()
    try:
        with out.open("a" if resume else "w", encoding="utf-8") as fout:
            for row in rows(src, progress="summarising"):
                if isinstance(row, BadRow):
                    print(f"appliancectl: line {row.line}: {row.reason}", file=sys.stderr)
                    fout.write(json.dumps(error_record(row)) + "\n")
                    tally.refused += 1
                    continue
                if row.id in skip:
                    tally.skipped += 1
                    continue
                for w in row.warnings:
                    print(f"appliancectl: line {row.line}: {w}", file=sys.stderr)
                text = deidentify(row.text, KnownIdentifiers(patient_key=row.id), secret).text
                r = summarise_document(engine, cfg, text, row.kind, cancel=cancel, examples=examples)
                fout.write(json.dumps({"id": row.id, "summary": r.structured, "text": r.text},
                                      ensure_ascii=False) + "\n")
                fout.flush()
                tally.done += 1
    finally:
        engine.close()
    return tally
