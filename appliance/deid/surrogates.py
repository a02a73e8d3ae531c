"""Realistic, consistent surrogates.

Each patient gets a key derived by HMAC from the installation secret and the patient's
stable key, so a value maps to the same surrogate in all of that patient's documents and
to a different one on another installation. Dates move by one per-patient shift of whole
weeks, which keeps intervals and weekdays."""
from __future__ import annotations

import hashlib
import hmac
import re
from datetime import date, timedelta
from functools import cache
from . import vocab
from .text import MARKS

_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december"]
# Safe Harbor: three-digit ZIP prefixes with 20,000 or fewer people become 000 (2000 census list).
RESTRICTED_ZIP3 = frozenset({"036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830",
                             "831", "878", "879", "884", "890", "893"})
_NAME_WORD = re.compile(rf"[^\W\d_](?:[^\W\d]|[{MARKS}])*(?:['.\-][^\W\d_]+)*\.?|\d+")
_SURROGATE_INSTITUTIONS = ["Riverside General Hospital", "Maple Valley Medical Center",
                           "Lakeview Community Hospital", "Northgate Clinic", "Cedar Hill Hospital",
                           "Westbrook Medical Center", "Pine Ridge Health Center", "Harbor View Hospital"]
_STREETS = ["Oak", "Maple", "Cedar", "Elm", "Pine", "Willow", "Birch", "Lake", "Hill", "Park", "Spruce",
            "Chestnut", "Walnut", "Sunset", "Meadow", "River"]
_STREET_TYPES = ["Street", "Avenue", "Road", "Lane", "Drive", "Court"]


@cache
def _names(kind: str, limit: int = 1000) -> tuple[str, ...]:
    """The `limit` first entries of a word list, title-cased, as surrogate material."""
    return tuple(w.title() for w in vocab.lines(f"{kind}.txt")[:limit])


@cache
def _name_pool(kind: str) -> tuple[str, ...]:
    """Every name of a census list that is no English, clinical or medical word, so a
    surrogate is drawn uniformly (the first-name list is alphabetical: a prefix of it would
    tell a reader which names are real) and can never be mistaken for, or restored over,
    an ordinary word ("White" in "white matter")."""
    words = vocab.common() | vocab.medical() | vocab.english_extended()
    return tuple(w.title() for w in vocab.lines(f"{kind}.txt")
                 if len(w) >= 3 and w.isalpha() and w.lower() not in words)


def _like(template: str, value: str) -> str:
    if template.isupper() and len(template) > 1:
        return value.upper()
    if template.islower():
        return value.lower()
    return value


def _shape(original: str, digest: bytes) -> str:
    """Same shape: digits stay digits, letters stay letters, punctuation stays."""
    out = []
    for i, ch in enumerate(original):
        b = digest[i % len(digest)]
        if ch.isdigit():
            out.append(str(b % 10))
        elif ch.isalpha():
            c = chr(ord("A") + b % 26)
            out.append(c if ch.isupper() else c.lower())
        else:
            out.append(ch)
    return "".join(out)


class Surrogates:
    def __init__(self, secret: bytes, patient_key: str, avoid: frozenset[str] = frozenset()) -> None:
        """`avoid`: lower-case words a surrogate must never be (the patient's real name parts),
        so a replacement can never look like, or be mistaken for, a leak."""
        self._key = hmac.new(secret, b"patient:" + patient_key.encode("utf-8"), hashlib.sha256).digest()
        self._avoid = avoid
        self.shift_days = -7 * (1 + self._int("date-shift", "") % 52)

    def _digest(self, label: str, value: str) -> bytes:
        return hmac.new(self._key, f"{label}\x00{value}".encode(), hashlib.sha256).digest()

    def _int(self, label: str, value: str) -> int:
        return int.from_bytes(self._digest(label, value)[:8], "big")

    def replace(self, label: str, original: str) -> str:
        if label in ("PATIENT", "NAME"):
            return self.name(original)
        if label == "DATE":
            return self.date(original)
        if label == "AGE":
            return "90+"
        if label == "ZIP":
            return self.zip(original)
        if label == "EMAIL":
            return f"contact{self._int('EMAIL', original.lower()) % 10000:04d}@example.org"
        if label == "URL":
            return f"https://example.org/r/{self._int('URL', original) % 100000:05d}"
        if label == "IP":
            return f"192.0.2.{self._int('IP', original) % 254 + 1}"
        if label in ("ADDRESS",):
            return self.address(original)
        if label in ("LOCATION",):
            cities = _names("us_cities", 2000)
            n = self._int("LOCATION", original.lower())
            pick = cities[n % len(cities)]
            while set(pick.lower().replace(".", " ").split()) & self._avoid:  # "Camp H.M. Smith" for Dr Smith
                n += 1
                pick = cities[n % len(cities)]
            return _like(original, pick)
        if label == "BLOB":
            return f"[{len(original)}-character token removed]"
        if label == "INSTITUTION":
            pick = _SURROGATE_INSTITUTIONS[self._int("INST", original.lower()) % len(_SURROGATE_INSTITUTIONS)]
            return _like(original, pick)
        return _shape(original, self._digest(label, original))

    def name(self, original: str) -> str:
        def one(word: str) -> str:
            core = word.strip(".,'")
            if len(core) <= 1:
                initial = _names("last_names")[self._int("INIT", core.lower()) % 1000][0]  # initials by frequency
                return word.replace(core, _like(core or "A", initial)) if core else word
            if core.isdigit():
                return word.replace(core, _shape(core, self._digest("NAME", core)))
            pool = _name_pool("first_names") if core.lower() in vocab.first_names() else _name_pool("last_names")
            pick = pool[self._int("NAME", core.lower()) % len(pool)]
            step = 1
            while pick.lower() == core.lower() or pick.lower() in self._avoid:
                pick = pool[(self._int("NAME", core.lower()) + step) % len(pool)]
                step += 1
            return word.replace(core, _like(core, pick))

        # Any script: a Greek, Arabic or Korean name gets a surrogate too, never itself.
        return _NAME_WORD.sub(lambda m: one(m.group()), original)

    def address(self, original: str) -> str:
        n = self._int("ADDR", original.lower())
        if re.match(r"\s*\d", original):
            text = f"{n % 9000 + 100} {_STREETS[n % len(_STREETS)]} {_STREET_TYPES[n // 7 % len(_STREET_TYPES)]}"
        else:
            cities = _names("us_cities", 2000)
            text = cities[n % len(cities)]
        return _like(original, text)

    def zip(self, original: str) -> str:
        digits = re.sub(r"\D", "", original)
        prefix = digits[:3]
        if len(prefix) < 3 or prefix in RESTRICTED_ZIP3:
            prefix = "000"
        return prefix + "XX"

    def date(self, original: str) -> str:
        if _WEEKDAY_TIME.match(original):
            return original  # the shift is whole weeks: "Monday morning" stays Monday morning
        shifted = shift_date_text(original, self.shift_days)
        return shifted if shifted is not None else "[date]"


_WEEKDAY_TIME = re.compile(r"(?i)(?:mon|tues|wednes|thurs|fri|satur|sun)day\s")


def _year(text: str, default: int = 2000) -> int:
    text = text.strip("'")
    if len(text) == 2:
        y = int(text)
        return 1900 + y if y > 30 else 2000 + y
    return int(text) if text else default


def _month_index(word: str) -> int | None:
    w = word.lower().rstrip(".")
    for i, m in enumerate(_MONTHS):
        if len(w) >= 3 and m.startswith(w):
            return i + 1
    return None


_NUMERIC = re.compile(r"^(?P<m>\d{1,2})(?P<sep>[/\-])(?P<d>\d{1,2})(?:(?P=sep)(?P<y>\d{2}|\d{4}))?$")
_DOTTED = re.compile(r"^(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{2}|\d{4})$")
_ISO = re.compile(r"^(?P<y>\d{4})(?P<sep>[/\-]?)(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})$")
_MONTH_FIRST = re.compile(r"^(?P<mon>[A-Za-z]+)(?P<dot>\.?)(?P<sp>[\s,]+)(?P<d>\d{1,2})(?P<suf>st|nd|rd|th)?"
                          r"(?:(?P<sp2>,?\s+)(?P<y>'?\d{2}|\d{4}))?$", re.IGNORECASE)
_MONTH_YEAR = re.compile(r"^(?P<mon>[A-Za-z]+)(?P<dot>\.?)(?P<sp>,?\s+(?:of\s+)?)(?P<y>'?\d{2}|\d{4})$", re.IGNORECASE)
_DAY_FIRST = re.compile(r"^(?P<d>\d{1,2})(?P<suf>st|nd|rd|th)?(?P<sp>(?:\s+of)?[\s\-]+)(?P<mon>[A-Za-z]+)"
                        r"(?P<dot>\.?)(?:(?P<sp2>[\s\-,]+)(?P<y>'?\d{2}|\d{4}))?$", re.IGNORECASE)
_YEAR_ONLY = re.compile(r"^'(?P<y>\d{2})$")


def _month_word(original: str, month: int) -> str:
    core = original.rstrip(".")
    was_full = core.lower() in _MONTHS
    full = _MONTHS[month - 1]
    return _like(core, (full if was_full else full[:3]).title())


def _suffix(day: int, template: str | None) -> str:
    if not template:
        return ""
    s = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return s.upper() if template.isupper() else s


def _fmt_year(template: str, year: int) -> str:
    if template.startswith("'"):
        return f"'{year % 100:02d}"
    return f"{year % 100:02d}" if len(template) == 2 else f"{year:04d}"


def _shift(y: int, m: int, d: int, days: int) -> date | None:
    try:
        return date(y, m, d) + timedelta(days=days)
    except ValueError:
        return None


def shift_date_text(text: str, days: int) -> str | None:
    """Shift a date written in any of the usual formats; keep the format. None if unparsable."""
    t = text.strip()
    if m := _NUMERIC.match(t):
        y = m.group("y")
        nd = _shift(_year(y) if y else 2001, int(m.group("m")), int(m.group("d")), days)
        if nd is None:
            return None
        out = f"{nd.month:0{len(m.group('m'))}d}{m.group('sep')}{nd.day:0{len(m.group('d'))}d}"
        return out + (m.group("sep") + _fmt_year(y, nd.year) if y else "")
    if m := _DOTTED.match(t):
        nd = _shift(_year(m.group("y")), int(m.group("m")), int(m.group("d")), days)
        if nd is None:
            return None
        return f"{nd.day:0{len(m.group('d'))}d}.{nd.month:0{len(m.group('m'))}d}.{_fmt_year(m.group('y'), nd.year)}"
    if m := _ISO.match(t):
        nd = _shift(int(m.group("y")), int(m.group("m")), int(m.group("d")), days)
        if nd is None:
            return None
        s = m.group("sep")
        return f"{nd.year:04d}{s}{nd.month:0{len(m.group('m'))}d}{s}{nd.day:0{len(m.group('d'))}d}"
    for rx in (_MONTH_FIRST, _DAY_FIRST):
        if (m := rx.match(t)) and (mon := _month_index(m.group("mon"))):
            y = m.group("y")
            nd = _shift(_year(y) if y else 2001, mon, int(m.group("d")), days)
            if nd is None:
                return None
            month = _month_word(m.group("mon"), nd.month) + m.group("dot")
            day = f"{nd.day}{_suffix(nd.day, m.group('suf'))}"
            tail = (m.group("sp2") + _fmt_year(y, nd.year)) if y else ""
            if rx is _MONTH_FIRST:
                return f"{month}{m.group('sp')}{day}{tail}"
            return f"{day}{m.group('sp')}{month}{tail}"
    if (m := _MONTH_YEAR.match(t)) and (mon := _month_index(m.group("mon"))):
        nd = _shift(_year(m.group("y")), mon, 15, days)
        if nd is None:
            return None
        month = _month_word(m.group("mon"), nd.month)
        return f"{month}{m.group('dot')}{m.group('sp')}{_fmt_year(m.group('y'), nd.year)}"
    if m := _YEAR_ONLY.match(t):
        nd = _shift(_year(m.group("y")), 7, 1, days)
        return f"'{nd.year % 100:02d}" if nd else None
    return None
