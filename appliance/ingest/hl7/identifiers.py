"""Identifiers a message declares about its patient, relatives and clinicians."""
from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from dataclasses import dataclass, field

from ...domain import KnownIdentifiers, PersonName
from .er7 import Segment, component, components, repetitions, subcomponents
from .escape import unescape

T = TypeVar("T")

# (segment, field) -> how to read it. Names in XPN put family first; XCN/CNN put an id first.
_PATIENT_XPN = {("PID", 5), ("PID", 9), ("MRG", 7)}
_OTHER_XPN = {("PID", 6), ("NK1", 2), ("NK1", 30), ("GT1", 3), ("IN1", 16)}
_XCN = {("PV1", 7), ("PV1", 8), ("PV1", 9), ("PV1", 17), ("PD1", 4), ("ORC", 10), ("ORC", 11),
        ("ORC", 12), ("ORC", 19), ("OBR", 16), ("OBR", 28), ("OBX", 16), ("TXA", 5), ("TXA", 9),
        ("TXA", 10), ("TXA", 11), ("TXA", 22), ("TXA", 23), ("PRT", 5), ("ROL", 4), ("NTE", 5)}
_NDL = {("OBR", 32), ("OBR", 33), ("OBR", 34), ("OBR", 35)}
_IDS = {("PID", 2), ("PID", 3), ("PID", 4), ("PID", 18), ("PID", 19), ("PID", 20), ("PID", 21),
        ("MRG", 1), ("MRG", 2), ("MRG", 3), ("MRG", 5), ("PV1", 19), ("PV1", 50), ("GT1", 2),
        ("IN1", 36), ("NK1", 33), ("TXA", 12)}
_ADDRESSES = {("PID", 11), ("NK1", 4), ("NK1", 32), ("GT1", 5)}
_PHONES = {("PID", 13), ("PID", 14), ("NK1", 5), ("NK1", 6), ("NK1", 31), ("GT1", 6), ("GT1", 7)}
_DATES = {("PID", 7), ("PID", 29)}
_IDENTIFYING: dict[str, list[int]] = {}
for _seg, _n in sorted(_PATIENT_XPN | _OTHER_XPN | _XCN | _NDL | _IDS | _ADDRESSES | _PHONES | _DATES):
    _IDENTIFYING.setdefault(_seg, []).append(_n)


def _clean(v: str, enc: str) -> str:
    v = unescape(v, enc).strip()
    return "" if v in ('""', "") else v


def _xpn(value: str, enc: str) -> PersonName:
    c = components(value, enc)
    def get(i: int) -> str:
        return _clean(subcomponents(c[i], enc)[0], enc) if i < len(c) else ""

    return PersonName(family=get(0), given=get(1), middle=get(2), prefix=get(4))


def _xcn(value: str, enc: str) -> PersonName:
    c = components(value, enc)
    def get(i: int) -> str:
        return _clean(subcomponents(c[i], enc)[0], enc) if i < len(c) else ""

    name = PersonName(family=get(1), given=get(2), middle=get(3), prefix=get(5))
    if name.is_empty() and c and not c[0].replace("-", "").isdigit():
        # Some senders put a free-text name in the first component ("John Smith").
        parts = _clean(c[0], enc).split()
        if len(parts) >= 2 and all(p.replace(".", "").isalpha() for p in parts):
            name = PersonName(family=parts[-1], given=parts[0], middle=" ".join(parts[1:-1]))
    return name


def _ndl(value: str, enc: str) -> PersonName:
    first = components(value, enc)[0]
    s = subcomponents(first, enc)
    def get(i: int) -> str:
        return _clean(s[i], enc) if i < len(s) else ""

    return PersonName(family=get(1), given=get(2), middle=get(3))


def _address_parts(value: str, enc: str) -> tuple[list[str], str]:
    c = [_clean(subcomponents(x, enc)[0], enc) for x in components(value, enc)]
    lines = [x for x in c[:3] if x]  # street, other designation, city
    zipc = c[4] if len(c) > 4 else ""
    return lines, zipc


def _phone(value: str, enc: str) -> list[str]:
    c = [_clean(x, enc) for x in components(value, enc)]
    out = []
    if c and c[0]:
        out.append(c[0])
    if len(c) > 6 and c[6]:
        out.append((c[5] if len(c) > 5 else "") + c[6])
    return out


def _email(value: str, enc: str) -> str:
    c = components(value, enc)
    return _clean(c[3], enc) if len(c) > 3 and "@" in c[3] else ""


@dataclass
class _Found:
    """What the identifying fields of one message held, gathered field by field."""
    patient: list[PersonName] = field(default_factory=list)
    others: list[PersonName] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    zips: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    patient_key: str = ""
    birth: str = ""


def _names(found: _Found, key: tuple[str, int], rep: str, enc: str) -> bool:
    """A person's name field: the patient's, or another person's (kin, staff). False if not one."""
    if key in _PATIENT_XPN:
        found.patient.append(_xpn(rep, enc))
    elif key in _OTHER_XPN:
        found.others.append(_xpn(rep, enc))
    elif key in _XCN:
        found.others.append(_xcn(rep, enc))
    elif key in _NDL:
        found.others.append(_ndl(rep, enc))
    else:
        return False
    return True


def _take(found: _Found, key: tuple[str, int], rep: str, enc: str) -> None:
    """One repetition of an identifying field, by the field's kind."""
    if _names(found, key, rep, enc):
        return
    if key in _IDS:
        v = _clean(component(rep, enc, 1), enc)
        if v:
            found.ids.append(v)
            if key == ("PID", 3) and not found.patient_key:
                found.patient_key = f"{_clean(component(rep, enc, 4), enc)}|{v}"
    elif key in _ADDRESSES:
        lines, z = _address_parts(rep, enc)
        found.addresses.extend(lines)
        if z:
            found.zips.append(z)
    elif key in _PHONES:
        found.phones.extend(_phone(rep, enc))
        e = _email(rep, enc)
        if e:
            found.emails.append(e)
    elif key in _DATES:
        v = _clean(component(rep, enc, 1), enc)
        if v:
            found.dates.append(v)
            if key == ("PID", 7):
                found.birth = v


def extract(segments: list[Segment], enc: str) -> KnownIdentifiers:
    found = _Found()
    for seg in segments:
        for n in _IDENTIFYING.get(seg.name, ()):  # most segments of a result carry none
            raw = seg.fields[n] if n < len(seg.fields) else ""
            for rep in repetitions(raw, enc) if raw else ():
                if rep:
                    _take(found, (seg.name, n), rep, enc)
    patient = [p for p in found.patient if not p.is_empty()]
    patient_key = found.patient_key
    if not patient_key:
        first = patient[0] if patient else PersonName()
        patient_key = f"name|{first.family.upper()}|{first.given.upper()}|{found.birth}"
    def uniq(xs: Iterable[T]) -> tuple[T, ...]:
        return tuple(dict.fromkeys(x for x in xs if x))

    return KnownIdentifiers(
        patient_key=patient_key,
        patient_names=uniq(patient),
        other_names=uniq(o for o in found.others if not o.is_empty()),
        record_numbers=uniq(found.ids),
        dates=uniq(found.dates),
        addresses=uniq(found.addresses),
        postal_codes=uniq(found.zips),
        phones=uniq(found.phones),
        emails=uniq(found.emails),
        birth_date=found.birth,
    )
