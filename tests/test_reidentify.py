"""Surrogates back to originals: the pure part of re-identification."""
from __future__ import annotations

from appliance.deid import deidentify
from appliance.domain import KnownIdentifiers, PersonName
from appliance.services.reidentify import restore

KNOWN = KnownIdentifiers(patient_key="HOSP|MRN4471902",
                         patient_names=(PersonName(family="WHITAKER", given="ELEANOR"),),
                         record_numbers=("MRN4471902",))


def test_restore_undoes_deidentify_including_a_capitalised_summary():
    text = "Eleanor Whitaker (MRN4471902) seen 03/12/2024; CT shows a 1.4 cm node."
    d = deidentify(text, KNOWN, b"s" * 32)
    assert "Whitaker" not in d.text
    assert restore(d.text, d.surrogates) == text
    shouting = d.text.upper()
    assert "Whitaker" in restore(shouting, d.surrogates)  # found in any case, put back as written


def test_placeholders_and_partial_words_are_left_alone():
    assert restore("see [date] and Smithson", {"[date]": "03/12/2024", "Smith": "Whitaker"}) == \
        "see [date] and Smithson"
