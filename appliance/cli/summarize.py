"""`appliancectl summarize`: the daemon's summary pipeline offline, on a JSONL file.

IN lines {"id", "text"[, "kind"]}; OUT lines {"id", "summary": {...structured...}, "text": "..."}.
The same steps as the daemon, through the same call (llm.pipeline.summarise_document): de-
identification, the document's type from its content, the prompt, the model under its grammar,
grounding, with the config's model settings, chronic-findings policy and the site's worked
examples. The model is the config's pinned one, or --model FILE.gguf (checked, not pinned)."""
from __future__ import annotations

import secrets
import threading
from pathlib import Path

from ..config import ModelConfig
from ..deid import deidentify
from ..domain import KnownIdentifiers
from ..llm.engine import open_engine
from ..llm.integrity import sha256_file, verify_model
from ..llm.pipeline import summarise_document
from .batch import Row, Tally, run_batch


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

    def one(row: Row) -> dict[str, object]:
        text = deidentify(row.text, KnownIdentifiers(patient_key=row.id), secret).text
        r = summarise_document(engine, cfg, text, row.kind, cancel=cancel, examples=examples)
        return {"id": row.id, "summary": r.structured, "text": r.text}

    try:
        return run_batch(src, out, resume, "summarising", one, ensure_ascii=False)
    finally:
        engine.close()
