"""`appliancectl deid`: the corpus format in, surrogate text and original-offset spans out."""
from __future__ import annotations

import json
import secrets
from pathlib import Path

from ..deid import deidentify
from ..domain import KnownIdentifiers
from ..store.keys import read_key


def run_deid_jsonl(src: Path, out: Path, secret_file: Path | None) -> int:
    secret = read_key(secret_file, "deid") if secret_file else secrets.token_bytes(32)
    n = 0
    with src.open(encoding="utf-8") as fin, out.open("w", encoding="utf-8") as fout:
        for line in fin:
            if not line.strip():
                continue
            rec = json.loads(line)
            d = deidentify(rec["text"], KnownIdentifiers(patient_key=str(rec.get("id", n))), secret)
            fout.write(json.dumps({"id": rec.get("id"), "deidentified": d.text,
                                   "spans": [{"start": s.start, "end": s.end, "label": s.label} for s in d.spans]})
                       + "\n")
            n += 1
    return n
