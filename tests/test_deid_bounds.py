"""De-identification is bounded: memory grows with the text by at most 50 MB per MB (the
tagger reads a long note in windows). Measured as the slope of peak memory between a short and
a long note, each in a fresh process, so loading the word lists is not counted as the note's."""
from __future__ import annotations

import json
import subprocess
import sys

PROBE = r"""
import json, random, resource, sys
from appliance.deid import deidentify
from appliance.domain import KnownIdentifiers
random.seed(7)
names = ["Okafor", "Lindqvist", "Tanaka", "Moreau", "Petrov", "Haddad", "Quispe", "Nakamura"]
def note(i):
    n = random.choice(names)
    return (f"Seen by Dr. {n} on {1 + i % 12}/{1 + i % 28}/2024. BP {100 + i % 40}/{60 + i % 20}, HR {60 + i % 50}. "
            f"Pt reports pain {i % 10}/10; call back at 617-555-{1000 + i % 9000:04d}. Lungs clear. "
            f"Plan: continue apixaban 5 mg bid, follow up with {n} clinic in 2 weeks.\n")
text = "".join(note(i) for i in range(int(sys.argv[1]) // 260))
out = deidentify(text, KnownIdentifiers(patient_key="p"), b"k" * 32)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"chars": len(text), "peak_kb": peak, "leaked": any(n in out.text for n in names)}))
"""


def _probe(chars: int) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE, str(chars)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_memory_per_megabyte_of_text_is_bounded():
    short, long = _probe(50_000), _probe(1_000_000)
    per_mb = (long["peak_kb"] - short["peak_kb"]) / 1024 / ((long["chars"] - short["chars"]) / 1e6)
    assert per_mb <= 50, (short, long, per_mb)
    assert not short["leaked"] and not long["leaked"]
