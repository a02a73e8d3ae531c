"""`appliancectl deid`: the corpus format in, surrogate text and original-offset spans out."""
from __future__ import annotations

import secrets
from pathlib import Path

from ..deid import deidentify
from ..domain import KnownIdentifiers
from ..store.keys import read_key
from .batch import Row, Tally, run_batch


def run_deid_jsonl(src: Path, out: Path, secret_file: Path | None, resume: bool = False) -> Tally:
    secret = read_key(secret_file, "deid") if secret_file else secrets.token_bytes(32)

    def one(row: Row) -> dict[str, object]:
        d = deidentify(row.text, KnownIdentifiers(patient_key=row.id), secret)
        return {"id": row.id, "deidentified": d.text,
                "spans": [{"start": s.start, "end": s.end, "label": s.label} for s in d.spans]}

    return run_batch(src, out, resume, "de-identifying", one)
