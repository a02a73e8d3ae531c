"""Pattern recognisers for identifiers no header declares. Each is (label, regex); the
regexes are linear-time in practice (no nested quantifiers over the same characters)."""
from __future__ import annotations

import re

from ..domain import Span
from . import vocab

USPS_SUFFIXES = """Alley Branch Bridge Brook Brooks Burg Bypass Camp Canyon Cape Causeway Center Centers
Circles Cliff Cliffs Club Common Corner Corners Course Courts Cove Coves Creek Crescent Crest Crossing
Crossroad Curve Dale Dam Divide Drives Estate Estates Expressway Extension Fall Falls Ferry Field
Fields Flat Flats Ford Fords Forest Forge Forges Fork Forks Fort Freeway Garden Gardens Gateway Glen
Glens Green Greens Grove Groves Harbor Harbors Haven Heights Hill Hills Hollow Inlet Island Islands
Isle Junction Junctions Key Keys Knoll Knolls Lake Lakes Land Landing Light Lights Loaf Lock Locks
Lodge Loop Mall Manor Manors Meadow Meadows Mews Mill Mills Mission Motorway Mount Mountain Mountains
Neck Orchard Oval Overpass Park Parks Parkways Pass Passage Path Pike Pine Pines Place Plain Plains
Plaza Point Points Port Ports Prairie Radial Ramp Ranch Rapid Rapids Rest Ridge Ridges River Roads
Route Row Run Shoal Shoals Shore Shores Skyway Spring Springs Spur Spurs Square Squares Station
Stravenue Stream Streets Summit Throughway Trace Track Trafficway Trail Trailer Tunnel Turnpike
Underpass Union Unions Valley Valleys Viaduct View Views Village Villages Ville Vista Walk Walks Wall
Ways Well Wells""".split()

_MON = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
        r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?:(?:19|20)\d\d|'\d\d)"

DATE_PATTERNS: list[str] = [
    # 7/22/1992, 07-22-92, 22.07.1992 (m/d without a year is handled with context below)
    r"(?<![\d/.x])(?:0?[1-9]|1[0-2])([/\-])(?:[12]\d|3[01]|0?[1-9])\1(?:19|20)?\d\d(?![\d/\-%]|\.\d)",
    r"(?<![\d/.\-])(?:[12]\d|3[01]|0?[1-9])\.(?:0?[1-9]|1[0-2])\.(?:19|20)?\d\d(?!\d|\.\d)",
    # day first, where the day cannot be a month: 14/03/2023, 25-12-22
    r"(?<![\d/.x])(?:1[3-9]|2\d|3[01])([/\-])(?:0?[1-9]|1[0-2])\1(?:19|20)?\d\d(?![\d/\-%]|\.\d)",
    # "10/03/10/04" (two dates), "11/21.93" (a dot before the year)
    r"(?<![\d/])(?:0?[1-9]|1[0-2])/(?:[12]\d|3[01]|0?[1-9])/(?:0?[1-9]|1[0-2])/(?:[12]\d|3[01]|0?[1-9])(?![\d/])",
    r"(?<![\d/.])(?:0?[1-9]|1[0-2])/(?:[12]\d|3[01]|0?[1-9])\.\d\d(?![\d.])",
    # the first date of a range glued to the second: "12/03/2024-12/09/2024", "3/1/24 - 3/5/24"
    r"(?<![\d/.x])(?:0?[1-9]|1[0-2])/(?:[12]\d|3[01]|0?[1-9])/(?:19|20)?\d\d(?=\s*[-\u2013]\s*\d{1,2}/\d{1,2}/)",
    # a month and its year: "5/2023", "05-2019", "Mar-24", "MAR '24" (Safe Harbor removes the month)
    r"(?<![\d/.\-])(?:0?[1-9]|1[0-2])([/\-])(?:19|20)\d\d(?![\d/\-%]|\.\d)",
    rf"(?i:\b{_MON})(?:-|\s?['\u2019])\d\d\b(?!\s*(?:hrs?|hours?|h|mins?|mg|%)\b)",
    # 1992-07-22, 1992/07/22, 19920722
    r"(?<!\d)(?:19|20)\d\d[-/](?:0?[1-9]|1[0-2])[-/](?:[12]\d|3[01]|0?[1-9])(?!\d)",
    r"(?<!\d)(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)",
    # July 22nd, 1992 / Jul 22 / July of 1992 / July '92
    rf"\b{_MON}\.?\s+{_DAY}\b(?:,?\s+{_YEAR}\b)?",
    rf"\b{_MON}\.?,?\s+(?:of\s+)?{_YEAR}",
    # 22 July 1992 / 22-JUL-1992 / 22nd of July
    rf"\b{_DAY}(?:\s+of)?[\s\-]+{_MON}\b\.?(?:[\s\-,]+{_YEAR}\b)?",
    # "nov, 96": a month, a comma and two digits is a year
    rf"\b{_MON},\s\d\d\b(?!\s?(?:%|:)|\d)",
    # "1->2 nov, 96": the first day of a range of days
    rf"(?<![\d/])(?:[12]\d|3[01]|0?[1-9])(?=\s*->?\s*{_DAY}[\s\-]+{_MON}\b)",
    # years in running text: "in 2017", "during 2004", "a 2010 film"
    r"(?i)\b(?:in|during|of|year|founded|circa)\s(?P<v>(?:19|20)\d\d)\b(?!\s*(?:-|hrs?\b|h\b|:))",
    # "a 2021 Norwegian film": a year used as an adjective
    r"(?i)\b(?:a|an|the)\s(?P<v>(?:19|20)\d\d)\s(?!(?:ml|cc|mg|mcg|units?|kcal|cal|calorie|hrs?|h|to|-)\b)[a-z]",
    # "CVA in 94": two digits from 40 after "in", when no unit follows
    r"(?i)\bin\s(?P<v>(?:[4-9]\d|0\d)(?:\s(?:and|&)\s(?:[4-9]\d|0\d))?)\b(?!'?s\b|\s*(?:%|mg|mcg|cc|ml|min|mins|"
    r"minutes|hours?|hrs?|sec|seconds|units?|mmhg|beats|bpm|degrees|x\b|l\b|kg|lbs?|breaths|/|-|\.\d))",
    # "REPAIR IN 14'": two digits and an apostrophe after "in" are a year
    r"(?i)\bin\s(?P<v>\d\d)'(?=\s)",
    # "on the 11th", "the 3rd"
    r"(?:(?<=\bthe )|(?<=\bon ))(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)\b"
    r"(?=\s*(?:$|[.,;:)\n]|of\b|at\b|and\b|to\b|through\b|thru\b|-))",
    # A weekday alone is kept (no Safe Harbor element, and the whole-week shift keeps it true);
    # a weekday with its time of day is a point in time: "on Monday morning", "Monday at 10"
    r"(?i)\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\s+(?:morning|afternoon|evening|night|at\s+\d{1,2}"
    r"(?::\d\d)?\s*(?:[ap]\.?m\.?)?(?!\d))",
    # '92 on its own, and 74' as clinicians write it after a history item
    r"(?<![\w'])'\d\d\b",
    # 1960-1999: never a 24-hour time, so a year wherever it stands (also "1980s")
    r"(?<![\w.,/\-])19[6-9]\d(?:'?s)?(?![\w/\-]|\.\d|,\d)",
]

# 1900-1959 and 2000-2059 read as times too ("1900 - 0700"): a year only after a cue.
_YEAR_CUED = re.compile(r"(?i)\b(?:(?:in|since|year|of|yr|circa)\s+((?:19|20)[0-5]\d)|(?:mi|cabg|cva|ptca|avr|mvr|"
                        r"stroke|tia|pci|nephrectomy|cholecystectomy|appendectomy|hysterectomy)\s+((?:19|20)[0-5]\d|"
                        r"'?\d\d))(?:'?s)?"
                        r"(?![\w.:/\-%]|\.\d|\s*(?:%|mg|cc|ml|units?|x\b|hrs?\b|min))")

PATTERNS: list[tuple[str, str] | tuple[str, str, tuple[str, ...]]] = [
    ("EMAIL", r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+"),
    ("URL", r"\b(?:https?://|ftp://|www\.)[^\s<>\"']+"),
    # (not a blood gas written with dots: "7.45.34.88" is pH, pCO2, pO2)
    ("IP", r"(?<![\d.])(?!7\.[0-7]\d\.)(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?!\d|\.\d)"),
    ("IP", r"\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b"),
    ("SSN", r"(?<!\d)\d{3}[- ]\d{2}[- ]\d{4}(?!\d)"),
    ("PHONE", r"(?<![\d\-])(?:\+?1[\s.\-]?)?\(?\d{3}\)?[\s.\-]?\d{3}[\s.\-]\d{4}(?:\s*(?:x|ext\.?)\s*\d{1,5})?(?!\d)"),
    ("PHONE", r"(?<![\d\-./])\(\d{3}\)\s*\d{3}\d{4}(?!\d)"),
    # spaces around the dashes: "(617) 555 - 0199", "617- 555-0199"
    ("PHONE", r"(?<![\d\-./])\(\d{3}\)\s*\d{3}\s*[\-.]\s*\d{4}(?!\d)"),
    ("PHONE", r"(?<![\d\-./])\d{3}\s*-\s*\d{3}\s*-\s*\d{4}(?!\d)"),
    ("PHONE", r"(?<![\d\-./:])(?!\d00-\d?000)\d{3}-\d{4}(?![\d\-])"),
    ("PHONE", r"(?i)\b(?:pager|beeper|pgr|pg|bpr|page|cell|mobile|home|work|tel|telephone|phone|ph|fax|ext|"
              r"extension|beep)\s*(?:#|no\.?|number|num)?[\s:#]*(?P<v>\d[\d\s\-.()]{3,14}\d)"),
    ("PHONE", r"(?<![\d\-])\(?\d{3}\)?[\s\-]\d{3}[\s\-]\d{4,5}(?![\d\-])"),
    # the area code set off by a slash ("617/555-1234", "(617) / 555 1234")
    ("PHONE", r"(?<![\d\-/])\(?\d{3}\)?\s*/\s*\d{3}[\s.\-]?\d{4}(?![\d\-/])"),
    ("ID", r"(?<![\w\-])(?:\d[\s\-]?){13,19}(?![\w\-])"),  # card and account numbers
    ("ID", r"(?i)\b(?:mrn|mr#|acct|account|med(?:ical)?\s+rec(?:ord)?|unit\s*(?:no|number|#)|"
           r"licen[cs]e|lic|dea|npi|ssn|social\s+security|policy|member\s*id|member|health\s+plan|plan\s+(?:id|no)|"
           r"beneficiary|subscriber|insurance(?:\s+id)?|group|id|passport|vin|serial|"
           r"plate|certificate|cert)\s*(?:no\.?|number|#)?\s*[:#]?\s*(?P<v>(?=[A-Z\-]*\d)[A-Z0-9][A-Z0-9\-]{3,})\b"),
    ("ID", r"(?<![\w\-])[A-Z]{1,3}\d{5,}[A-Z0-9]*(?![\w\-])"),
    # a letter prefix, a dash, six or more digits: "HP-998877", "#XX-112233"
    ("ID", r"(?<![\w\-])[A-Z]{2,4}-\d{6,}(?![\w\-])"),
    ("ID", r"(?<![\w\-.])\d{7,}(?![\w\-]|\.\d)"),
    ("AGE", r"(?i)\b(?:9\d|1[0-1]\d)(?:\s*|-)(?:y/?o\b|yo\b|yrs?\b|years?(?:[\s\-]old)?\b|year-old|-year)"),
    ("AGE", r"(?i)\b(?:aged?|age of)\s+(?:9\d|1[0-1]\d)\b"),
    ("ZIP", r"\b(?:AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|"
            r"NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY),?\s(?P<v>\d{5}(?:-\d{4})?)\b"),
    ("ZIP", r"(?i)\b(?:zip(?:\s*code)?|postal\s*code|post\s*code|postcode)\s*(?:is|:|"
        r"#)?\s*(?P<v>[A-Z0-9]{2,5}(?:[\s\-][A-Z0-9]{2,4})?)\b"),
    # international phone numbers: a leading + or 0 and several digit groups
    ("PHONE", r"(?<![\w+])\+\d{1,3}[\s.\-]?(?:\(0\)\s?)?\d[\d\s.\-]{5,14}\d(?![\d])"),
    # (a full stop or "-Fax" may follow; a dot or dash before more digits continues a number)
    ("PHONE", r"(?<![\w.\-/])\(?0\d{1,4}\)?(?:[\s.\-]\d{2,4}){2,4}(?![\w/]|[.\-]\d)"),
    ("PHONE", r"(?i)\b(?:call me on|call me at|reach me at|text me at|text me on|messages to|me on|number is)\s"
              r"(?P<v>\+?\(?\d{2,5}\)?(?:[\s.\-]\d{2,6}){1,4})(?![\w.\-/]|\.\d)"),
    ("PHONE", r"(?<![\w)])\(\d{2,4}\)\s?\d{3}[\-\s]\d{3,4}(?![\d])"),
    ("PHONE", r"(?i)\b(?:phone|mobile|desk|office|tel|fax|cell|call|reach|number|registered|at):?\s"
              r"(?P<v>(?=[\d\s.\-()]{9})\(?\d{2,4}\)?(?:[\s.\-]\d{2,6}){1,4})(?![\w.\-/]|\.\d)"),
    # "Apt. 946", "Suite 380", "P.O. Box 242"
    ("ADDRESS", r"\b(?:Apt|APT|Apartment|Suite|SUITE|Ste|STE|Unit|Flat|Bldg|P\.?\s?O\.?\s?Box|PO Box|P\.O\. BOX|Box|"
        r"BOX)"
                r"\.?\s*#?\s*\d+[A-Z]?\b(?!\s*%)"),
    # "Rua Igreja 25", "ul. Północna 73", "Rue De La Gare" (then a line break or an apartment):
    # a street word, a name, a number or the end of the street line
    ("ADDRESS", r"(?:\b(?:Rua|Rúa|Rue|Via|Viale|Calle|Avenida|Avenue|Avda|Av|ul|Ul|Plac|Carrer|Praça|Strada|Calea|"
                r"Str|Boulevard|Chemin|Allée|Place|Paseo|Camino|Rambla|Travessa|Largo|Piazza|Corso|Trg|Ulica)\.?|"
                r"\bC/)"
                r"(?:\s+(?:[Dd][aeo]s?|[Dd]el|[Dd]i|[Ll]a|[Ll]e|[Aa]l|[Dd]u)?\s*[A-ZÀ-Ž][\w'\-]+){1,4}"
                r"(?:\s+\d+[A-Za-z]?\b|(?=[ \t]*(?:\n|,|Apt\b|Suite\b)))"),
    # "Populierenstraat 374", "Trenerys gate 232", "Mekanikusv 11": a street-suffixed word and a number
    ("ADDRESS", r"\b[A-ZÀ-Ž][\w\-]*(?:straat|strasse|straße|gatan|gata|gate|vej|veien|vegen|vägen|väg|weg|laan|"
                r"gade|gasse|allee|steig|plein|gracht|kade|utca|katu|polku)\.?\s+\d+[A-Za-z]?\b"),
    ("ADDRESS", r"\b[A-ZÀ-Ž][\w\-]+\s+(?:gate|vei|veg|vej|gata|gatan|street|str\.?|road|lane|[Ss]tra(?:ss|ß)e|[Ww]eg|"
        r"utca|tér|út)"
                r"\s+\d+[A-Za-z]?\b"),
    # "Király u. 15.": Hungarian utca, abbreviated
    ("ADDRESS", r"\b[A-ZÀ-Ž][\w\-]+(?:\s[A-ZÀ-Ž][\w\-]+)?\su\.\s\d+\.?"),
    # military mail: "PSC 0413, Box 8144 APO AA 42323", "Unit 4719 Box 7394 DPO AP 70942"
    ("ADDRESS", r"(?i)\b(?:PSC|Unit|USNS|USNV|USS|USCGC)\s+\d{3,5},?\s*Box\s+\d{3,5}\b", ("box",)),
    ("ADDRESS", r"(?i)\b(?:USNS|USNV|USS|USCGC)\s+[^\W\d_][\w'\-]*(?=\s*(?:APO|DPO|FPO)\b)",
     ("apo", "dpo", "fpo")),
    ("ADDRESS", r"(?i)\b(?:APO|DPO|FPO)\s+A[AEP]\s+\d{5}\b", ("apo", "dpo", "fpo")),
    # "the corner of Postbox 21 and Elisabeth Parks"
    ("ADDRESS", r"(?i)\b(?:the\s+)?corner\s+of\s+[^\n,;]{2,40}?\s+and\s+[A-ZÀ-Ž][\w\-]*(?:\s+[A-ZÀ-Ž][\w\-]*){0,3}",
     ("corner",)),
    # form fields: "Name: Kamila Červinková"
    # ("Patient:" heads prose as often as a name: fields.py reads it by the value's shape)
    ("NAME", r"\b(?:Name|NAME|Contact|CONTACT)\s?:[ \t]*(?P<v>[^\W\d_][\w'\-]*(?:[ \t]+[^\W\d_][\w'.\-]*){0,2})"),
    # "lives at ...", "address: ...": the rest of the clause
    ("ADDRESS", r"(?i)\b(?:lives (?:at|on)|living at|resides at|located at|based at|(?:office|offices) (?:is|are) at|"
                r"drops? you off at|address(?: of [^,.\n]{1,40})? is|address:|here (?:it is|they are):|"
                r"sent to\?(?: user:)?)"
                r"\s+(?P<v>[^\n;]{4,80}?)(?=\s*(?:[.;\n]\s|[.;]?$|\n))"),
    ("ADDRESS", r"(?i)\b\d{1,6}\s+(?:[NSEW]\.?\s+)?(?:[A-Z][A-Za-z]+\s+){1,3}(?:street|avenue|road|"
                r"boulevard|drive|lane|court|way|terrace|parkway|circle|highway)\b"
                r"(?:\s*(?:apt|suite|ste|unit|#)\.?\s*[\w\-]+)?"),
    # the rest of the USPS street suffixes (Publication 28, appendix C), in Title case only:
    # in capitals or lower case too many of them are ordinary words ("2 FALLS", "3 units run")
    ("ADDRESS", r"\b\d{1,6}\s+(?:[NSEW]\.?\s+)?(?:[A-Z][a-z]+\s+){1,3}(?:" + "|".join(USPS_SUFFIXES) + r")\b"
                r"(?:\s*(?:Apt|Suite|Ste|Unit|#)\.?\s*[\w\-]+)?"),
    # a named street with no number: "on Berg Hills Street"
    ("ADDRESS", r"\b(?!(?:The|A|An|This|That|Our|My|Your|His|Her|Their|On|In|At|Of|To)\s)"
                r"(?:[A-Z][a-z]+\s+){1,3}(?:Street|Avenue|Road|Boulevard|Lane|Drive)\b",
     ("street", "avenue", "road", "boulevard", "lane", "drive")),
    # "Hoge Wei 32 street", "Árpád fejedelem útja 3. street": a name and number the word street follows
    ("ADDRESS", r"(?:\bC/\s*|\b)[A-ZÀ-Ž][\w'\-]*\.?(?:[ \t]+[\w'\-]+\.?){0,3}[ \t]+\d{1,5}\.?"
                r"(?=[ \t]+(?:street\b|road\b|avenue\b|St\.|Str\.))", ("street", "road", "avenue", "st.", "str.")),
    ("ADDRESS", r"(?i)\b(?:p\.?\s?o\.?\s+box)\s+\d+"),
]
PATTERNS += [("DATE", p) for p in DATE_PATTERNS]

# m/d without a year: a date unless it reads as a fraction, a ventilator setting, a dose or a ratio.
_MONTH_DAY = re.compile(r"(?<![\d/.\-])(0?[1-9]|1[0-2])/([12]\d|3[01]|0?[1-9])(?![\d/]|\.\d)")
# "AC 10/5" is assist-control; "R AC 11/17" is the right antecubital fossa, and a date follows
_NOT_DATE_BEFORE = re.compile(r"(?i)(?:\b(?:ps|peep|cpap|psv|(?<![rl] )ac|simv|imv|bipap|ratio|d5|x|grade|"
                              r"strength|bs|bp|abg|vent|pressure|support|trial|cpap/ps|ps/peep|co/ci|"
                              r"flow-?by)\s*[:=]?\s*|[@x*/'])$")
# what follows a number pair that is a quantity, not a date: units, "'s" decades, hours
_NOT_DATE_AFTER = re.compile(r"(?i)\s*(?:%|ns\b|u\b|units?\b|cc\b|ml\b|mg\b|strength|peep|ps\b|x\s?\d|[/x]\d|"
                             r"pain|scale|sem\b|murmur|'s|hrs?\b|hours?\b|l\s?(?:nc|np|o2)\b|lpm\b|liters?\b|nc\b|np\b|"
                             r"pillows?\b)")
_PAIN = re.compile(r"(?i)pain|\bcp\b|c/o|scale|discomfort|ache|hurt|angina")


_VENT = re.compile(r"(?i)\b(?:cpap|ps|peep|bi-?pap|psv|ips|fio2|ventilation|simv|imv|vt|vent|flow-?by)\b")
_VENT_AFTER = re.compile(r"(?i)[\s,.)]*(?:\d\d?\s*%|ips|psv|ps\b|peep|cpap|bi-?pap|fio2)")
_DATE_CUE = re.compile(r"(?i)\b(?:on|since|from|until|dated|thru|through)\s+$")
# m/yy ("AVR 8/88") and m-d after a date preposition ("on 7-8").
_MONTH_YEAR = re.compile(r"(?<![\d/.\-])(?:0?[1-9]|1[0-2])/(?:3[2-9]|[4-9]\d|0\d)(?![\d/]|\.\d)")
_DASHED = re.compile(r"(?i)\b(?:on|since|until|dated) ((?:0?[1-9]|1[0-2])-(?:[12]\d|3[01]|0?[1-9]))(?![\d\-])")


def _month_day_spans(text: str) -> list[Span]:
    out = [Span(m.start(), m.end(), "DATE") for m in _MONTH_YEAR.finditer(text)
           if not _NOT_DATE_AFTER.match(text, m.end()) and not _fraction(text, m.start(), m.end())]
    out += [Span(m.start(1), m.end(1), "DATE") for m in _DASHED.finditer(text)
            if not _NOT_DATE_AFTER.match(text, m.end())]
    for m in _MONTH_DAY.finditer(text):
        a, b = int(m.group(1)), int(m.group(2))
        cued = _DATE_CUE.search(text, max(0, m.start() - 8), m.start()) is not None
        if not cued and (a == 1 and b <= 4 or (a, b) in ((3, 4), (2, 3))):
            continue  # 1/2, 1/3, 3/4: fractions
        if b == 10 and a <= 10 and _PAIN.search(text, max(0, m.start() - 30), min(len(text), m.end() + 30)):
            continue  # 3/10: a pain score
        if _NOT_DATE_BEFORE.search(text, max(0, m.start() - 12), m.start()):
            continue
        if _VENT.search(text, max(0, m.start() - 14), m.start()) or _VENT_AFTER.match(text, m.end()):
            continue  # PS/PEEP pairs such as "CPAP 10/5", "5/5 IPS", "5/5, 40%"
        if _NOT_DATE_AFTER.match(text, m.end()) or _fraction(text, m.start(), m.end()):
            continue
        out.append(Span(m.start(), m.end(), "DATE"))
    return out


# (label, regex, words one of which the text must contain for the regex to be worth running)
_COMPILED = [(entry[0], re.compile(entry[1], re.IGNORECASE if entry[0] in ("DATE", "URL") else 0),
              entry[2] if len(entry) > 2 else ()) for entry in PATTERNS]


# IBAN (an account number, Safe Harbor class 10): country, check digits, 11-30 letters and digits,
# printed in groups of four or not; the mod-97 check keeps other codes out.
_IBAN = re.compile(r"(?i)\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")


# A number range after a measurement is its range, not a phone number: "SVR 954-1183",
# "voiding 575-1000", "SVR is in the 900-1300". And a phone number never starts inside a
# decimal ("pH 7.44-7.46").
_MEASURED = re.compile(r"(?i)\b(?:svr|pvr|hr|bp|sbp|map|cvp|co|ci|uo|u/o|voiding|plt|wbc|glucose|"
                       r"fs|bs|vt|tv|rate|range)\b[\s:=]*(?:(?:is\s+)?in\s+the\s+)?$")


def _not_phone(text: str, start: int, end: int) -> bool:
    in_decimal = start >= 2 and text[start - 1] == "." and text[start - 2].isdigit()
    return (_MEASURED.search(text, max(0, start - 16), start) is not None or in_decimal
            or _DECIMAL.match(text, start, end) is not None)


_DECIMAL = re.compile(r"\d\.\d")


def _iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "").upper()
    if not 15 <= len(s) <= 34:
        return False
    digits = "".join(str(int(c, 36)) for c in s[4:] + s[:4])
    return int(digits) % 97 == 1


def pattern_spans(text: str) -> list[Span]:
    out: list[Span] = []
    lower = text.lower()
    for label, rx, needs in _COMPILED:
        if needs and not any(w in lower for w in needs):
            continue
        # A pattern with a (?P<v>...) group marks only that group; the rest is context.
        g = "v" if "v" in rx.groupindex else 0
        out.extend(Span(m.start(g), m.end(g), label) for m in rx.finditer(text) if m.start(g) < m.end(g)
                   and not (label == "PHONE" and _not_phone(text, m.start(g), m.end(g))))
    out.extend(_month_day_spans(text))
    out.extend(Span(m.start(), m.end(), "ID") for m in _IBAN.finditer(text) if _iban_ok(m.group()))
    for m in _YEAR_CUED.finditer(text):
        g = 1 if m.group(1) else 2
        out.append(Span(m.start(g), m.end(g), "DATE"))
    out.extend(_years_after_terms(text))
    return [sp for sp in out if not (sp.label == "DATE" and _vent_setting(text, sp))]


_PAIR = re.compile(r"\d{1,2}/\d{1,2}")
# Pressure support over PEEP ("PS 10/5", "cpap/ps 8/5", "tried on 5/5"): a ventilator setting,
# not a month and day, when a ventilation word stands just before it.
_VENT = re.compile(r"(?i)\b(?:ps|psv|peep|cpap|bi-?pap|simv|cmv|imv|prvc|pressure support|vent|ventilator)\b"
                   r"(?:[^.;\n]|\.(?=\d)){0,30}$|\b(?:tried|trial) (?:on|of) (?:a )?$")


def _vent_setting(text: str, sp: Span) -> bool:
    if not _PAIR.fullmatch(text[sp.start:sp.end]):
        return False
    a, b = (int(x) for x in text[sp.start:sp.end].split("/"))
    before = text[max(0, sp.start - 40):sp.start]
    return a <= 30 and b <= 30 and bool(_VENT.search(before)) and not _DATED.search(before[-16:])


# A score out of its maximum or a count out of a total: "strength 5/5", "reflexes 2/4",
# "pain 7/10", "4/4 bottles", "3/12 cores": the word before names what is measured, or the
# noun after names what is counted. Bounded to small totals so "seen 3/4" stays a date.
_SCORED = re.compile(r"(?i)\b(?:strength|motor|power|pulses?|reflexes|dtrs?|grip|pain|score|murmur|grade|"
                       r"sensation|gcs|apgars?|rass|aox|a&o|oriented|positive in|quadrants|extremities|"
                       r"muscle|ue|le|rue|lue|rle|lle|bue|ble)\b[^.;\n\d]{0,20}$")
_COUNTED = re.compile(r"(?i)^\s*(?:\+\s*)?(?:bottles?|sets?|cultures?|cores?|nodes?|specimens?|samples?|views?|"
                      r"lobes?|vessels?|doses?|points?|beats?|strength|power|motor|pulses?|bilat|bilaterally|"
                      r"throughout|in all|all extremities)\b")


def _fraction(text: str, start: int, end: int) -> bool:
    """The number pair at [start, end) is a score or a count by its words, not a month and day."""
    a, b = (int(x) for x in text[start:end].split("/"))
    if not (0 <= a <= b <= 12 or b == 10):
        return False
    before = text[max(0, start - 40):start]
    return bool(_SCORED.search(before) or _COUNTED.match(text[end:end + 24])) \
        and not _DATED.search(before[-16:]) and not re.search(r"(?i)\b(?:on|of|since|from|until|by)\s*$", before)


_DATED = re.compile(r"(?i)\b(?:placed|since|from|dated|started|inserted|changed on|on admission)\b")


_TERM_YEAR = re.compile(r"(?i)\b([a-z][a-z/']*[a-z'])\s+((?:19|20)\d\d|'\d\d)(?:'?s)?"
                        r"(?![\w.:/\-%]|\.\d|\s*(?:%|mg|cc|ml|units?|x\b|hrs?\b|min))")
_DX_WORDS = frozenset("dx dx'd dxd diagnosed diagnosis hx s/p sp onset since".split())


def _years_after_terms(text: str) -> list[Span]:
    """A year attached to a diagnosis or procedure ("DM dx'd 2004", "s/p lobectomy 1998"):
    a date element of the patient's history. A year after an ordinary word stays (Safe Harbor
    keeps bare years)."""
    if not any(c.isdigit() for c in text):
        return []
    out = []
    for m in _TERM_YEAR.finditer(text):
        w = m.group(1).lower()
        if w in _DX_WORDS or ((w in vocab.medical() or w in vocab.clinical()) and w not in vocab.english()):
            out.append(Span(m.start(2), m.end(2), "DATE"))
    return out
