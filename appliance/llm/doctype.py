"""What a document is, read from its content, not from the transport that carried it: an ORU
or an MDM may carry a radiology report, a pathology report, an ECG, a discharge summary or a
nursing note. The title (OBR-4 and OBX-3 labels arrive as the text's headings), the document's
own headings and its vocabulary decide together; the transport is only the tie-breaker."""
from __future__ import annotations

import re

from .labs import is_lab_report
from .outline import Section

# Document types, and the family each is summarised as: a diagnostic report (an impression),
# a laboratory report (its abnormal values), or a note (problems, medication changes, follow-up).
FAMILY = {"radiology": "radiology", "pathology": "radiology", "ecg": "radiology", "echo": "radiology",
          "lab": "lab", "lab-narrative": "radiology", "discharge": "note", "progress": "note",
          "consult": "note", "nursing": "note", "note": "note"}

# (type, title or vocabulary, weight). The opening lines weigh the most: a title names the type.
_CUES: list[tuple[str, str]] = [
    ("discharge", r"discharge summary|hospital course|discharge diagnos\w+|discharged?:|date of discharge|"
                  r"medication changes|discharge medications|admission date|admitted:"),
    ("consult", r"\bconsult(?:ation)?\b|reason for consult\w*|thank you for (?:this|the) (?:consult|referral)|"
        r"consulting service"),
    ("nursing", r"nursing (?:note|assessment|progress)|\brn\b note|shift (?:note|assessment)|nurse's note|"
                r"charge nurse"),
    ("progress", r"progress note|\bsoap\b|subjective:|objective:|(?:office|clinic|wellness|follow-up|annual) visit|"
                 r"clinic note|^\s*[soap]:|hospital day|\bhd ?#?\d|overnight|icu (?:day|note)|"
                 r"\bpod ?#?\d|post-?op(?:erative)? day|daily note|interval history|rounds"),
    ("pathology", r"pathology|specimen|gross(?: description)?:|microscopic|biopsy|cytology|resection|excision|"
                  r"final diagnosis|margins?|curettage|immunohisto\w+|frozen section|histolog\w+"),
    ("ecg", r"\becg\b|\bekg\b|electrocardiogra\w+|12[- ]lead|ventricular rate|\bqrs\b|\bqtc?\b|pr interval|"
            r"sinus rhythm"),
    ("echo", r"echocardiogra\w+|\btte\b|\btee\b|ejection fraction|\blvef\b|\bwall motion|valve|pericardial effusion|"
             r"\blv (?:size|function)|diastolic function"),
    ("lab-narrative", r"critical value|laboratory|\blab(?:oratory)? (?:report|result)|smear|blood culture|\bcbc\b|"
                      r"chemistry|specimen (?:collected|received)|reference (?:range|interval)|hemolysis|gram stain|"
                      r"culture|mmol/l|mg/dl|x10\^9|urinalysis|specific gravity|microscopy"),
    ("radiology", r"\bct\b|\bcta\b|\bmri?\b|\bmra\b|ultrasound|sonogra\w+|\bus\b|x-?ray|radiograph\w*|\bxr\b|"
                  r"angiogra\w+|scintigraph\w+|nuclear medicine|\bpet\b|\bspect\b|v/q|ventilation[- ]perfusion|"
                  r"mammogra\w+|fluorosc\w+|doppler|technique:|comparison:|findings:|contrast|axial|sagittal|"
                  r"hyperdense|hypodense|enhanc\w+|attenuation|radiologist|\bscan\b|uptake|tracer|radiotracer|"
                  r"radioactive iodine|i-123|i-131|tc-?99m|f-?18|fdg|suv|portable|\bap\b|\bpa\b|chest|views?\b|frontal|"
                  r"lateral|standing|weight-?bearing"),
]
_RX = [(t, re.compile(rf"(?im)(?:{p})")) for t, p in _CUES]


def classify(text: str, transport_kind: str = "") -> str:
    """One of FAMILY's keys."""
    if is_lab_report(text):
        return "lab"
    # The title: the first line, up to its first full stop.
    head = re.split(r"(?<=[.!?])\s", text.strip().split("\n", 1)[0], maxsplit=1)[0][:120]
    scores: dict[str, float] = {}
    for t, rx in _RX:
        title = len(rx.findall(head))
        body = len(rx.findall(text))
        scores[t] = 5.0 * title + min(body, 6)
    best = max(scores, key=lambda t: scores[t])
    if scores[best] == 0:
        if transport_kind.startswith("dicom:") or transport_kind.startswith("hl7:ORU"):
            return "radiology"
        return "note"
    return best


def family(doc_type: str) -> str:
    return FAMILY.get(doc_type, "note")


def has_role(sections: list[Section], role: str) -> bool:
    return any(s.role == role for s in sections)
