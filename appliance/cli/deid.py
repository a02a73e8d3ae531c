"""`appliancectl deid`: the corpus format in, surrogate text and original-offset spans out."""
from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

from ..deid import deidentify
from ..domain import KnownIdentifiers
from ..store.keys import read_key
from .batch import BadRow, Tally, done_ids, error_record, rows


def run_deid_jsonl(src: Path, out: Path, secret_file: Path | None, resume: bool = False) -> Tally:
    secret = read_key(secret_file, "deid") if secret_file else secrets.token_bytes(32)
    tally = Tally()
    skip = done_ids(out) if resume else set()
    with out.open("a" if resume else "w", encoding="utf-8") as fout:
        for row in rows(src, progress="de-identifying"):
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
            d = deidentify(row.text, KnownIdentifiers(patient_key=row.id), secret)
            fout.write(json.dumps({"id": row.id, "deidentified": d.text,
                                   "spans": [{"start": s.start, "end": s.end, "label": s.label} for s in d.spans]})
                       + "\n")
            fout.flush()
            tally.done += 1
    return tally
