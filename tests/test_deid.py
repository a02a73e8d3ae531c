"""De-identification: recogniser tables, declared identifiers, surrogates, the leak gate,
and recall floors on slices of the shared gold corpora."""
from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest

from appliance.deid import deidentify, find_spans
from appliance.deid.known import KnownMatcher
from appliance.deid.leakgate import gate
from appliance.deid.surrogates import Surrogates, shift_date_text
from appliance.domain import KnownIdentifiers, PersonName
from conftest import DATA
from deid_metrics import score_corpus

SECRET = b"s" * 32
NOBODY = KnownIdentifiers(patient_key="p1")


def covered(text: str, needle: str, known: KnownIdentifiers = NOBODY) -> bool:
    """Every character of `needle` (first occurrence) lies inside some PHI span."""
    start = text.index(needle)
    spans = find_spans(text, known)
    return all(any(s.start <= i < s.end for s in spans)
               for i in range(start, start + len(needle)) if text[i].isalnum())


# (label, text, the PHI in it) -- positive cases, ALL-CAPS and lower case
POSITIVE = [
    ("date", "Admitted on 7/22 with chest pain.", "7/22"),
    ("date", "SEEN 22-JUL-1992 IN CLINIC", "22-JUL-1992"),
    ("date", "MI in '92, CABG since", "'92"),
    ("date", "seen on July 22nd, 2019", "July 22nd, 2019"),
    ("date", "HISTORY OF MI 1992 AND CHF", "1992"),
    ("date", "DOB: 03/12/1958", "03/12/1958"),
    ("date", "returned 2021-04-09 for follow-up", "2021-04-09"),
    ("date", "PTCA AND STENT TO RCA 12/82.", "12/82"),
    ("date", "PICC placed 7/22 L arm", "7/22"),
    ("date", "Mr. Leiva flew home on Tuesday morning.", "Tuesday morning"),
    ("date", "PMHX CVA in 94 and 00 affected (R) side", "94 and 00"),
    ("date", "AAA REPAIR IN 14' C/B DVT", "14"),
    ("date", "progress note 1->2 nov, 96   1900 - 0700", "1->2 nov, 96"),
    ("date", "PICC PLACED IN R AC 11/17, ART LINE PLACED", "11/17"),
    ("age", "a 94 year old woman", "94 year"),
    ("age", "PT IS A 101 YO MALE", "101 YO"),
    ("phone", "call (206) 334-5232 today", "(206) 334-5232"),
    ("phone", "HOME# 603-960-5357", "603-960-5357"),
    ("phone", "grandson visited today.(301 273 45166) both", "301 273 45166"),
    ("phone", "son's ph 555-1234 for updates", "555-1234"),
    ("phone", "my registered 024 971 50 30. Could you", "024 971 50 30"),
    ("phone", "788-063-Office\\,07700 063 966-Fax", "07700 063 966"),
    ("phone", "pager #54321 anytime", "54321"),
    ("phone", "Desk: +447700 921 916", "+447700 921 916"),
    ("email", "mail jane.roe@example.com now", "jane.roe@example.com"),
    ("ssn", "SSN 555-44-4444 on file", "555-44-4444"),
    ("url", "see https://portal.example.org/p/123", "https://portal.example.org/p/123"),
    ("ip", "from host 10.20.30.40 at night", "10.20.30.40"),
    ("card", "card 4111 1111 1111 1111 declined", "4111 1111 1111 1111"),
    ("mrn", "MRN: 00123456 verified", "00123456"),
    ("iban", "refund to GB82 WEST 1234 5698 7654 32 please", "GB82 WEST 1234 5698 7654 32"),
    ("iban", "my iban is gb42nawi04454264788619", "gb42nawi04454264788619"),
    ("licence", "driver licence # D1234567 checked", "D1234567"),
    ("zip", "Springfield, IL 62704", "62704"),
    ("street", "lives at 42 Birchwood Lane with wife", "42 Birchwood Lane"),
    ("street", "2437 Main St Suite 442", "2437 Main St Suite 442"),
    ("doctor", "DISCUSSED WITH DR. SHAUGHNESSY AT BEDSIDE", "SHAUGHNESSY"),
    ("doctor", "spoke with dr brown today", "brown"),
    ("relative", "SOCIAL: DAUGHTER VERONICA IS PROXY", "VERONICA"),
    ("relative", "social: son bill called twice", "bill"),
    ("relative", "Sons Smokey, Morris and Roger in to visit", "Roger"),
    ("signature", "Ilene Macdonald RN", "Ilene Macdonald"),
    ("signature", "Q. LANDER RRT", "Q. LANDER"),
    ("institution", "TRANSFERRED FROM CALVERT HOSPITAL FOR", "CALVERT"),
    ("institution", "to go to sacred heart hospital today", "sacred heart"),
    ("place", "lives in Baltimore with her son", "Baltimore"),
    ("place", "TRANSFERRED TO GH FOR FURTHER MANAGEMENT", "GH"),
    ("name", "Patient Suzette Przybylo seen", "Suzette Przybylo"),
    ("middle initial", "Referred by Daniela C Capon yesterday", "Daniela C Capon"),
    ("middle initial", "signed John A. Leiva", "John A. Leiva"),
    ("suffix", "Kevin Veitonen II called", "Kevin Veitonen II"),
    ("street", "25615 Tawastintie 72 Apt. 004\nKNIVSTA, nan 18237", "25615 Tawastintie 72 Apt. 004"),
    ("street", "233 Erzsébet tér 19.\n Suite 282\n Domoszló\n Hungary 34796", "233 Erzsébet tér 19."),
    ("street", "meet me at 2407 tawastintie 6, sé, portugal", "2407 tawastintie 6"),
    ("street", "3747 3911 fourth avenue suite 112 calgary alberta", "calgary alberta"),
    ("street", "010 63 Avenue du Golf Arabe Suite 910", "010 63 Avenue du Golf Arabe"),
    ("street", "636 1812 Rue De La Gare\n Apt. 271", "Rue De La Gare"),
    ("street", "66029 138 Consul Place\n Apt. 050", "66029 138 Consul Place"),
    ("street", "shows on Berg Hills Street were important", "Berg Hills"),
    ("street", "enter on Hoge Wei 32 St. the first months", "Hoge Wei 32"),
    ("street", "The bus station is on Villacher Strasse 89", "Villacher Strasse 89"),
    ("military", "unit 1009 box 0219\ndpo ap 51065", "unit 1009 box 0219\ndpo ap 51065"),
    ("military", "USNV Botolen\nFPO AE 12382", "USNV Botolen"),
]

# Clinical text that must come through untouched
NEGATIVE = [
    "PT AFEBRILE, ID: TMAX 99.7",
    "ON CPAP 10/5 WITH 40% FIO2",
    "pain 3/10 in the left leg",
    "GIVEN 1/2 NS AT 100CC/HR",
    "CVP 11-13 AND PAD 17-20",
    "RR 12-24, SATS 94-99%",
    "HR 70-80'S NSR, BP 110/46",
    "TO OR FOR CABG, TEAM AWARE",
    "LASIX 40MG IV GIVEN, GOOD DIURESIS",
    "GU: FOLEY DRAINING CLEAR YELLOW URINE",
    "plan to go home today with family",
    "cardiac rehab when appropriate",
    "SEEN AT 1900 AND 2000 HRS",
    "ON AC 700 X 10, 10 Peep, 40%",
    "simv 10 x 600 50% 7.5 peep pip's 28, abg's now",
    "given 2 Percocet 5, pain eased",
    "ps 13 slowly during day. fio2 40, peep 5",
    "SAT>95 ON 4-5 L NC WITH RR 20S",
    "Cpap 5, Fio2 30%, with flowby 6/2. Spont vols",
    "VENT CHANGED TO AC 10/5 OVERNIGHT",
    "CO/CI 4.6-5.2/2.45-2.77 SVR 954-1183; RECEIVED 40 IV KCL",
    "on the neo her SVR is in the 900-1300",
    "started on PSV 20/5/.40. PH 7.44-7.46. bicarb gtt stopped",
    "Tube feedings restarted at 5pm. Nepro at 10 cc/hr.",
    "Fell asleep by 1:30AM. Desats to 88% on RA.",
    "SR w/ 1st AVB w/ freq PVCs, Trigem, pairs, couplets",
    "HD via L IJ, K 4.2, SBP 110s. cannot leave until after the Permacath is placed",
    "hands edematous and up on 1-2 pillows",
    "AFTER APPROX. 11/2HR, RATE INCREASED",
]


@pytest.mark.parametrize("label,text,phi", POSITIVE, ids=[f"{p[0]}-{i}" for i, p in enumerate(POSITIVE)])
def test_recogniser_finds(label, text, phi):
    assert covered(text, phi), f"{label}: {phi!r} not found"


@pytest.mark.parametrize("text", NEGATIVE)
def test_recogniser_leaves_clinical_text(text):
    assert find_spans(text, NOBODY) == []


def test_age_89_and_under_kept_over_89_becomes_90_plus():
    d = deidentify("A 45 year old and a 94 year old.", NOBODY, SECRET)
    assert "45 year old" in d.text and "90+" in d.text and "94" not in d.text


KNOWN = KnownIdentifiers(
    patient_key="GH|MRN4471902",
    patient_names=(PersonName(family="Whitaker", given="Eleanor", middle="J"),),
    other_names=(PersonName(family="Okafor", given="Daniel"),),
    record_numbers=("MRN4471902",),
    dates=("19580312",),
    addresses=("42 Birchwood Lane", "Springfield"),
    postal_codes=("62704",),
    phones=("2175550143",),
    birth_date="19580312",
)


@pytest.mark.parametrize("variant", [
    "WHITAKER, ELEANOR", "Eleanor Whitaker", "whitaker eleanor", "E. Whitaker", "Mrs Whitaker",
    "Whitakr", "Whittaker", "ELEANOR", "Dr Okafor", "D. Okafor", "MRN4471902", "03/12/1958", "3/12/58",
    "March 12, 1958", "1958-03-12", "(217) 555-0143", "217.555.0143", "42 BIRCHWOOD LANE", "springfield",
])
def test_declared_identifier_variants_are_found(variant):
    text = f"Note: {variant} was reviewed."
    spans = KnownMatcher(KNOWN).spans(text)
    start = text.index(variant)
    hit = set()
    for s in spans:
        hit.update(range(max(s.start, start), min(s.end, start + len(variant))))
    title = re.match(r"(?:Mrs|Mr|Dr)\.? ", variant)  # a title is not an identifier
    letters = {i for i in range(start + (title.end() if title else 0), start + len(variant)) if text[i].isalnum()}
    assert letters <= hit, f"{variant!r} only partly found"


def test_short_names_are_not_matched_fuzzily():
    k = KnownIdentifiers(patient_key="x", patient_names=(PersonName(family="Lee", given="Ann"),))
    assert KnownMatcher(k).spans("see the knee") == []


def test_surrogates_consistent_per_patient_and_differ_across_installations():
    text = "Eleanor Whitaker seen by Dr Okafor. Whitaker stable."
    a1 = deidentify(text, KNOWN, SECRET).text
    a2 = deidentify("Whitaker again, Eleanor.", KNOWN, SECRET).text
    b = deidentify(text, KNOWN, b"t" * 32).text
    sur = Surrogates(SECRET, KNOWN.patient_key)
    fake = sur.name("Whitaker")
    assert fake != "Whitaker" and a1.count(fake) == 2 and fake in a2
    assert a1 != b
    assert "Whitaker" not in a1 and "Okafor" not in a1


def test_surrogate_map_points_back_to_the_original():
    d = deidentify("Eleanor Whitaker, MRN4471902", KNOWN, SECRET)
    assert set(d.surrogates.values()) >= {"Eleanor", "Whitaker", "MRN4471902"} or \
        "Eleanor Whitaker" in d.surrogates.values()


def test_date_shift_preserves_intervals_and_weekday():
    sur = Surrogates(SECRET, "patient-7")
    assert sur.shift_days % 7 == 0 and sur.shift_days < 0
    a = sur.date("03/01/2020")
    b = sur.date("03/15/2020")
    da = date(int(a[6:]), int(a[:2]), int(a[3:5]))
    db = date(int(b[6:]), int(b[:2]), int(b[3:5]))
    assert (db - da) == timedelta(days=14)
    assert da.weekday() == date(2020, 3, 1).weekday()
    other = Surrogates(SECRET, "patient-8")
    assert Surrogates(SECRET, "patient-7").shift_days == sur.shift_days
    assert other.shift_days != sur.shift_days or other.date("03/01/2020") == a


@pytest.mark.parametrize("text,days,expected", [
    ("7/22/1992", -7, "7/15/1992"),
    ("22-JUL-1992", -7, "15-JUL-1992"),
    ("July 22nd, 1992", -14, "July 8th, 1992"),
    ("1992-07-22", -7, "1992-07-15"),
    ("7/22", -7, "7/15"),
    ("'92", -365 * 2, "'90"),
])
def test_shift_keeps_the_format(text, days, expected):
    assert shift_date_text(text, days) == expected


def test_leak_gate_redacts_planted_identifier_in_model_output():
    out = "Summary: Mrs Whitaker has an enlarging nodule; call 217-555-0143."
    g = gate(out, KNOWN)
    assert g.hits >= 2 and "Whitaker" not in g.text and "555-0143" not in g.text


def _score(path):
    docs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    pred = {d["id"]: [{"start": s.start, "end": s.end} for s in find_spans(d["text"], NOBODY)] for d in docs}
    return score_corpus(docs, pred)


def test_recall_floor_on_physionet_nursing_notes_slice():
    m = _score(DATA / "deid" / "physionet-nursing-notes-first300.jsonl")
    assert m["recall"] >= 0.98  # measured 0.982 on this slice, 0.985 on all 1,450 shared notes
    assert m["precision"] >= 0.78  # 0.795 here, 0.823 on all


def test_recall_floor_on_presidio_synthetic_slice():
    m = _score(DATA / "deid" / "presidio-synthetic-first300.jsonl")
    by = m["recall_by_label"]
    for label in ("EMAIL_ADDRESS", "US_SSN", "IP_ADDRESS", "CREDIT_CARD"):
        assert by[label]["recall"] == 1.0, label
    assert by["PHONE_NUMBER"]["recall"] >= 0.93
    assert by["STREET_ADDRESS"]["recall"] >= 0.98  # 0.992 on this slice, 0.988 on all 1,000
    assert by["PERSON"]["recall"] >= 0.95  # 0.979 here, 0.975 on all
    assert by["DATE_TIME"]["recall"] >= 0.92


def test_deid_is_pure_and_leaves_no_declared_identifier():
    text = "ELEANOR WHITAKER, DOB 03/12/1958, MRN4471902, of 42 Birchwood Lane, Springfield IL 62704."
    d = deidentify(text, KNOWN, SECRET)
    for ident in ("ELEANOR", "WHITAKER", "1958", "MRN4471902", "Birchwood", "Springfield", "62704"):
        assert not re.search(ident, d.text, re.IGNORECASE), ident
    assert deidentify(text, KNOWN, SECRET) == d


def test_appliancectl_deid_writes_scorable_jsonl(tmp_path):
    import subprocess
    import sys

    src = DATA / "deid" / "physionet-nursing-notes-first300.jsonl"
    out = tmp_path / "pred.jsonl"
    r = subprocess.run([sys.executable, "-m", "appliance.cli.main", "deid", "--jsonl", str(src), "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    gold = [json.loads(x) for x in src.read_text().splitlines()]
    pred = [json.loads(x) for x in out.read_text().splitlines()]
    assert [p["id"] for p in pred] == [g["id"] for g in gold]
    for g, p in zip(gold, pred):
        for s in p["spans"]:  # offsets are in the original text
            assert 0 <= s["start"] < s["end"] <= len(g["text"]) and s["label"]
    m = score_corpus(gold, {p["id"]: p["spans"] for p in pred})
    assert m["recall"] >= 0.95


def test_a_surrogate_is_never_one_of_the_patients_real_names():
    common = KnownIdentifiers(patient_key="p9", patient_names=(PersonName(family="Johnson", given="Mary"),),
                              other_names=(PersonName(family="Smith", given="James"),))
    for secret in (bytes([i]) * 32 for i in range(40)):
        text = deidentify("Williams and Brown saw Mary Johnson with Dr James Smith.", common, secret).text
        for real in ("Johnson", "Mary", "Smith", "James"):
            assert not re.search(rf"\b{real}\b", text)


def test_case_tells_a_place_from_shorthand_where_the_writer_capitalises_names():
    text = ("Pt transferred from Riverside Hospital. Cardiac outputs done by thermodilution and fick "
            "per Dr. Martyn. Milrinone gtt at 0.35. Pt requests to go to camode often.")
    found = {text[s.start:s.end] for s in find_spans(text, NOBODY)}
    assert "Martyn" in found and "Riverside" in found
    assert not found & {"thermodilution", "Milrinone", "camode"}


def test_a_weekday_survives_the_whole_week_shift():
    d = deidentify("Discharge planned for Tuesday morning, clinic 03/12/2024.", KNOWN, SECRET)
    assert "Tuesday morning" in d.text and "03/12/2024" not in d.text


def test_a_name_found_once_is_found_everywhere_in_the_text():
    text = "Seen with Dr. Szczepanik today. Plan per szczepanik's note: continue diuresis."
    spans = find_spans(text, NOBODY)
    second = text.index("szczepanik's")
    assert any(s.start <= second < s.end for s in spans)
    assert not any("diuresis" in text[s.start:s.end] for s in spans)
