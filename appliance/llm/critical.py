"""Critical and actionable findings, across modalities and note types, read with their context.

Each class is a set of the names the field writes for it (ACR actionable findings, the
emergencies of ECG, laboratory, pathology and ward notes). A mention counts only when ConText
says it is asserted for this patient now: not negated ("no midline shift"), historical
("history of PE"), hypothetical ("return if chest pain"), about a relative or resolved; and not
in the sections that give the reason for the study (its indication asks a question, it does not
answer it). What is found leads the summary and is stored as `critical` in its structure."""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from .context import assertion
from .findings import sentences
from .outline import Section, outline

# class -> (label shown to a clinician, names). Written for this project from the ACR actionable
# findings list and standard critical-result policies (ECG, laboratory, pathology, notes).
CLASSES: dict[str, tuple[str, str]] = {
    "hemorrhage": ("intracranial hemorrhage",
                   r"(?:epidural|extradural|subdural|subarachnoid|intraparenchymal|intracerebral|intracranial|"
                   r"intraventricular|parenchymal|cerebellar|brainstem|pontine)\s+(?:\w+\s+){0,2}(?:hemorrhage|"
                   r"haemorrhage|hematoma|"
                   r"haematoma|hemorrhages|bleed)|\b(?:sdh|sah|edh|ich|ivh)\b|hemorrhagic (?:transformation|"
                   r"conversion|stroke)"),
    "occlusion": ("vessel occlusion / acute infarct",
                  r"(?:large[- ]vessel|basilar|vertebral|carotid|ica|m1|m2|mca|aca|pca|middle cerebral|"
                  r"anterior cerebral|"
                  r"posterior cerebral|internal carotid|artery|arterial)\s+(?:\w+\s+){0,3}occlu\w+|"
                  r"occlu\w+ (?:of|in) (?:the )?(?:\w+\s+){0,4}(?:artery|m1|m2|mca|ica|basilar)|\blvo\b|"
                  r"(?:acute|evolving|subacute)\s+(?:\w+\s+){0,3}(?:infarct\w*|stroke)|restricted diffusion|"
                  r"stroke alert|"
                  r"code stroke|venous sinus thrombosis|sinus thrombosis|dural venous"),
    "mass_effect": ("midline shift / herniation",
                    r"midline shift|(?:subfalcine|uncal|transtentorial|tonsillar|cerebral) herniation|herniation of the"
                    r"|effacement of the (?:basal )?cisterns"),
    "pulmonary_embolism": ("pulmonary embolism",
                           r"pulmonary (?:arterial )?embol\w*|saddle embol\w*|\bpe\b|(?:lobar|segmental|"
                           r"subsegmental)\s+(?:\w+\s+)?"
                           r"(?:embol\w*|filling defects?)|right heart strain|high probability (?:for |"
                           r"of )?(?:pulmonary )?embol\w*"),
    "aortic": ("aortic dissection / rupture",
               r"(?:aortic )?dissection|intramural hematoma|(?:ruptured|rupturing|"
               r"leaking)\s+(?:[\w.]+\s+){0,6}aneurysm|"
               r"aneurysm\w*\s+(?:\w+\s+){0,2}(?:rupture|with rupture)|contained rupture|aortic rupture|"
               r"aortic transection"),
    "pneumothorax": ("pneumothorax", r"tension pneumothorax|pneumothorax|pneumothoraces"),
    "free_air": ("free air / perforation",
                 r"pneumoperitoneum|free (?:intraperitoneal )?air|perforat\w+|anastomotic leak|extraluminal (?:air|"
                 r"contrast|gas)"),
    "bowel": ("bowel obstruction / ischemia",
              r"(?:small[- ]bowel|large[- ]bowel|bowel|colonic)\s+obstruction|closed[- ]loop|\bsbo\b|volvulus|"
              r"(?:bowel|mesenteric|intestinal)\s+ischemi\w*|pneumatosis|portal venous gas|"
              r"mesenteric (?:arterial )?(?:embol\w*|thromb\w*)"),
    "appendicitis": ("appendicitis", r"appendicitis"),
    "cholecystitis": ("cholecystitis", r"cholecystitis"),
    "torsion": ("torsion", r"torsion|torsed"),
    "ectopic": ("ectopic pregnancy",
                r"ectopic|tubal pregnancy|absen\w* (?:of )?(?:chorionic )?villi|no chorionic villi"),
    "cord": ("spinal cord compression / cauda equina",
             r"cord compression|compression of the (?:spinal )?cord|cauda equina|(?:spinal )?epidural abscess|"
             r"compress\w* (?:of |on )?(?:the )?(?:thecal sac|spinal cord|conus)"),
    "malignancy": ("new malignancy / metastasis",
                   r"carcinoma|malignan\w+|metasta\w+|lymphoma|leukemia|leukaemia|sarcoma|melanoma|neoplasm|cancer|"
                   r"myeloma|glioblastoma|blasts\b|auer rods|adenocarcinoma|mesothelioma"),
    "fracture": ("acute fracture",
                 r"(?:femoral neck|intertrochanteric|subtrochanteric|hip|pelvic|acetabular|vertebral|spine|spinal|"
                 r"burst|compression|odontoid|cervical|thoracic|lumbar|skull|temporal bone|"
                 r"unstable)\s+(?:\w+\s+){0,2}fractures?|"
                 r"fractures? (?:of|through|involving) (?:the )?(?:\w+\s+){0,3}(?:femoral neck|femur|hip|vertebra\w*|"
                 r"spine|odontoid|dens|skull|pelvis|acetabulum|[ctl]\d+)"),
    "cardiac": ("STEMI / ischemia / heart block / arrhythmia",
                r"st[- ]?(?:segment )?elevation|\bstemi\b|\bnstemi\b|myocardial infarction|complete heart block|"
                r"third[- ]degree (?:av |atrioventricular )?block|high[- ]grade av block|mobitz (?:ii|type ii|2)|"
                r"ventricular (?:tachycardia|fibrillation)|\bvt\b|\bvf\b|torsades|"
                r"qtc? (?:interval )?(?:of )?(?:prolong\w*)|"
                r"prolonged qtc?|tamponade|(?:lv|left ventricular|intracardiac|apical) thromb\w*|"
                r"acute coronary syndrome|"
                r"wellens|de winter|new lbbb"),
    "device": ("malpositioned tube or line",
               r"(?:tube|catheter|line|cannula)\b[^.;]{0,80}\b(?:(?:mainstem |main stem |lobar |"
               r"segmental )?bronch(?:us|i|ial)|"
               r"malposition\w*|misplace\w*|coiled in the (?:esophagus|pharynx))|malposition\w*|misplaced"),
    "critical_lab": ("critical laboratory value",
                     r"critical(?:ly)? (?:high|low|value|result)|panic value|critical call"),
    "sepsis": ("sepsis / shock",
               r"septic shock|\bsepsis\b|\bseptic\b|(?:cardiogenic|hemorrhagic|hypovolemic|distributive)\s+shock|"
               r"\bshock\b|"
               r"bacteremia|positive blood cultures?|blood cultures?\b[^.;]{0,80}\bpositive|gram[- ](?:negative|"
               r"positive) "
               r"(?:rods|cocci|bacilli|bacteremia)|necrotizing fasciitis|angioedema|"
               r"airway (?:compromise|obstruction)|ketoacidosis|\bdka\b|"
               r"respiratory failure|cardiac arrest|code blue|anaphyla\w+|status epilepticus|mucormycosis|"
               r"invasive fungal|"
               r"giant cell arteritis|neutropenic fever|febrile neutropenia"),
    "bleeding": ("active bleeding",
                 r"(?:upper |lower )?(?:gi|gastrointestinal|variceal|postpartum|retroperitoneal) (?:bleed\w*|"
                 r"hemorrhage)|"
                 r"massive transfusion|active (?:extravasation|bleeding)|hemoperitoneum|hemorrhagic shock|"
                 r"hemoglobin (?:drop|fell)"),
    "vascular": ("acute vascular finding",
                 r"(?:deep (?:vein|venous) )?thrombosis|\bdvt\b|occlusive thromb\w*|acute (?:limb )?ischemi\w*|"
                 r"limb ischemi\w*|"
                 r"placental abruption|abruption|arterial occlusion|compartment syndrome"),
}
_RX = {k: re.compile(rf"(?i)(?<![\w-])(?:{v})", re.I) for k, (_label, v) in CLASSES.items()}
# A fracture or a nodule the report calls old is not acute.
_OLD = re.compile(r"(?i)\b(?:old|healed|remote|chronic|stable|unchanged|prior|known|previously|again seen)\b")
_AGE_MATTERS = frozenset({"fracture", "malignancy", "aortic", "occlusion"})
# "Critical result discussed with ...", "read back", "notified": a communication, not a finding.
COMMUNICATED = re.compile(r"(?i)\b(?:critical (?:result|value|finding|ecg|call)s?|called (?:to|in)|discussed with|"
    r"communicated|"
                          r"conveyed|notified|paged|read[- ]back|telephoned|by (?:tele)?phone|phoned|"
                          r"cath lab activated)\b")
@dataclass(frozen=True)
class Critical:
    cls: str
    label: str
    start: int  # the sentence, as offsets into the text read
    end: int
    term: str  # the words that named it

    def to_dict(self) -> dict[str, object]:
        return {"class": self.cls, "label": self.label, "term": self.term, "span": [self.start, self.end]}


def question_ranges(text: str, sections: list[Section] | None = None) -> list[tuple[int, int]]:
    """Offsets of the sections that give a reason or a history."""
    return [(s.start, s.end) for s in (outline(text) if sections is None else sections) if s.role == "question"]


def answer_sentences(text: str, sections: list[Section] | None = None) -> Iterator[tuple[int, int]]:
    """The sentences outside the sections that give a reason or a history."""
    skip = question_ranges(text, sections)
    for a, b in sentences(text):
        if not any(a < e and s < b for s, e in skip):
            yield a, b


def mentions(text: str, sections: list[Section] | None = None) -> Iterator[tuple[str, int, int, re.Match[str]]]:
    """(class, sentence start, sentence end, the words) of every mention of a critical finding
    that could be asserted, before ConText reads it: what find_critical judges (and what
    bench/context_vs_medspacy.py gives both readers)."""
    for a, b in answer_sentences(text, sections):
        sentence = text[a:b]
        for cls, rx in _RX.items():
            for m in rx.finditer(sentence):
                if cls in _AGE_MATTERS and _OLD.search(sentence[max(0, m.start() - 40):m.end() + 25]):
                    continue
                if cls == "critical_lab" and (not re.search(r"\d(?!\d?:\d\d)", sentence) or is_communication(sentence)):
                    continue  # a value, not only the time it was called
                yield cls, a, b, m


def find_critical(text: str, sections: list[Section] | None = None) -> list[Critical]:
    """Every asserted critical finding, one per class and sentence, in text order."""
    out: list[Critical] = []
    found: set[tuple[str, int]] = set()
    for cls, a, b, m in mentions(text, sections):
        if (cls, a) not in found and assertion(text[a:b], m.start(), m.end()).asserted:
            found.add((cls, a))
            out.append(Critical(cls, CLASSES[cls][0], a, b, m.group(0)))
    return out


def is_communication(sentence: str) -> bool:
    """A sentence that only records who was told (no finding of its own)."""
    return bool(COMMUNICATED.search(sentence)) and not any(
        rx.search(sentence) for cls, rx in _RX.items() if cls != "critical_lab")


# Critical limits of the common analytes (adult; the usual hospital critical-call policy, in the
# units laboratories report them in): a value beyond one is a critical result whether or not the
# report says so. (analyte names, low limit, high limit); None where one side is not critical.
CRITICAL_LIMITS: list[tuple[str, float | None, float | None]] = [
    (r"potassium|k\+?", 2.8, 6.2),
    (r"sodium|na\+?", 120, 160),
    (r"(?:blood |serum |plasma )?glucose|glu", 50, 450),
    (r"(?:total )?calcium|ca", 6.5, 13.0),
    (r"ionized calcium|ica", 0.8, 1.6),
    (r"magnesium|mg", 1.0, 4.7),
    (r"phosph(?:orus|ate)", 1.0, None),
    (r"bicarbonate|hco3-?|total co2|tco2|co2", 10, 40),
    (r"hemoglobin|haemoglobin|hgb|hb", 7.0, 20.0),
    (r"platelets?|plt|platelet count", 20, 1000),
    (r"wbc|white (?:blood )?cells?(?: count)?|leukocytes", 1.5, 50),
    (r"inr", None, 5.0),
    (r"lactate|lactic acid", None, 4.0),
    (r"ph", 7.2, 7.6),
    (r"qtc", None, 500),
    (r"po2|pao2", 40, None),
]
_VALUE = r"[^\d\n;]{0,24}?(?<![\d.])(?P<value>\d+(?:\.\d+)?)(?!\s*(?:-|to)\s*\d)"
_LIMIT_RX = [(re.compile(rf"(?i)(?<![\w-])(?:{names})\b{_VALUE}"), low, high) for names, low, high in CRITICAL_LIMITS]


def critical_values(text: str) -> list[Critical]:
    """Laboratory (and QTc) values beyond their critical limits, one per sentence, in text order.
    The first number after the analyte's name is its value (not its reference range)."""
    out: list[Critical] = []
    for a, b in answer_sentences(text):
        sentence = text[a:b]
        for rx, low, high in _LIMIT_RX:
            m = rx.search(sentence)
            if not m or re.search(r"(?i)\b(?:ref\w*|normal|range)\b", sentence[m.start():m.start("value")]):
                continue
            value = float(m.group("value"))
            if (low is not None and value < low) or (high is not None and value > high):
                out.append(Critical("critical_lab", CLASSES["critical_lab"][0], a, b, m.group(0).strip()))
                break
    return out
