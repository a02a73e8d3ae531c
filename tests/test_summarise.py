"""Summaries: anchored on the report, bounded by a grammar, grounded (numbers with units, sides,
negations), reasoning stripped, the radiologist's impression kept whole. Fakes drive the
pipeline's logic; the real model drives it end to end."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from appliance.cli.init import test_model_path as smallest_model
from appliance.config import ModelConfig
from appliance.llm.findings import affirmed, negated, own_words, read
from appliance.llm.grounding import check
from appliance.llm.integrity import sha256_file
from appliance.llm.sections import find, split
from appliance.llm.summarise import NORMAL_CHEST, _named_lines, summarise, to_json
from appliance.llm.think import strip_thinking

REPORT = ("CLINICAL HISTORY: cough.\nCOMPARISON: none.\n"
          "FINDINGS: There is a small left pleural effusion. Enlarged right hilar lymph node measuring 1.4 cm. "
          "No pneumothorax. Heart size normal.\n"
          "IMPRESSION: Small left effusion and right hilar adenopathy. Recommend CT.")


# The same study without the radiologist's conclusion: the impression is the model's to word.
FINDINGS_ONLY = REPORT.split("\nIMPRESSION")[0]


def fake(text: str):
    def gen(prompt, cancel):
        assert prompt.grammar and prompt.messages[-1]["role"] == "user"
        for i in range(0, len(text), 4):
            if cancel.is_set():
                return
            yield text[i:i + 4]
    return gen


def test_reader_affirms_negates_and_knows_sides():
    fs = read("Small left pleural effusion. No pneumothorax. Bilateral lower lobe atelectasis.")
    assert {(f.observation, f.affirmed, f.side) for f in fs} == {
        ("effusion", True, "left"), ("pneumothorax", False, ""), ("atelectasis", True, "bilateral")}
    assert affirmed("Heart size is mildly enlarged. 2.1 cm nodule.") == {"cardiomegaly", "nodule"}
    assert negated("Lungs are clear without focal consolidation or effusion.") >= {"consolidation", "effusion"}


def test_sections_keep_the_radiologists_impression_whole():
    assert [s.name for s in split(REPORT)] == ["history", "comparison", "findings", "impression"]
    assert find(REPORT, "impression").text(REPORT) == "Small left effusion and right hilar adenopathy. Recommend CT."


@pytest.mark.parametrize("summary,kind", [
    ("Right hilar node 1.4 mm.", "unit"),             # a 1.4 cm node written as 1.4 mm
    ("Small right pleural effusion.", "side"),        # left written for right
    ("No pleural effusion.", "negation"),             # "no effusion" for "small effusion"
    ("Pneumothorax.", "negation"),                    # affirmed where the report denies it
    ("Right hilar node 2.2 cm.", "number"),           # a figure the report never states
])
def test_planted_errors_are_flagged(summary, kind):
    assert kind in {f.kind for f in check(summary, REPORT)}, check(summary, REPORT)


def test_grounded_wording_is_not_flagged():
    assert check("Small left pleural effusion. Right hilar lymph node 1.4 cm.", REPORT) == []


def test_model_line_inventing_a_finding_is_removed_and_a_dropped_one_comes_back():
    r = summarise(FINDINGS_ONLY, "hl7:ORU^R01", fake("Small left pleural effusion.\nLarge pneumothorax."))
    lines = r.structured["impression"]
    assert not any("pneumothorax" in ln.lower() for ln in lines)  # removed: the report denies it
    assert any("lymph node" in ln for ln in lines)  # anchored: the acute finding the model dropped
    assert r.structured["removed"].get("negation")  # counted, never quoted
    assert "large pneumothorax" not in to_json(r.structured).lower()
    for line in r.structured["lines"]:  # every line points at the sentences it rests on
        assert line["spans"] and all(FINDINGS_ONLY[a:b].strip() for a, b in line["spans"])


def test_a_runaway_line_is_cut_to_an_impression_line():
    long = "Small left pleural effusion " + "with adjacent atelectasis " * 20
    r = summarise(FINDINGS_ONLY, "hl7:ORU^R01", fake(long))
    assert all(len(line) <= 161 for line in r.structured["impression"])


def test_abnormal_study_is_never_called_normal():
    r = summarise(FINDINGS_ONLY, "hl7:ORU^R01", fake("No acute cardiopulmonary abnormality."))
    text = " ".join(r.structured["impression"]).lower()
    assert "effusion" in text and "lymph node" in text


def test_normal_study_needs_no_model_call():
    def boom(prompt, cancel):
        raise AssertionError("the model must not be called for a normal study")
    r = summarise("FINDINGS: Lungs are clear. No pleural effusion or pneumothorax. Heart size normal.",
                  "dicom:basic-text-sr", boom)
    assert r.structured["impression"] == [NORMAL_CHEST] and not r.model_called


def test_impression_survives_a_report_longer_than_the_context():
    filler = " ".join(f"Segment {i} of the liver is unremarkable." for i in range(3000))
    report = f"FINDINGS: Small right pleural effusion. {filler} Stable 5 mm left lower lobe nodule."
    r = summarise(report, "dicom:basic-text-sr", fake("Small right pleural effusion."), max_source_chars=4000)
    assert r.structured["truncated"] is True
    assert "effusion" in " ".join(r.structured["impression"]).lower()
    assert "shortened report" in r.text
    # With the radiologist's conclusion, it is the conclusion that is summarised, whole.
    r = summarise(report + "\nIMPRESSION: Right effusion. Stable nodule.", "dicom:basic-text-sr",
                  fake("THE MODEL WAS CALLED"), max_source_chars=4000)
    assert r.structured["impression"] == ["Right effusion.", "Stable nodule."] and not r.model_called


@pytest.mark.parametrize("pieces,opened,expected", [
    (["<think>plan it</think>Small effusion."], False, "Small effusion."),
    (["<th", "ink>plan", " it</th", "ink>", "Small effusion."], False, "Small effusion."),
    (["Small <think>hmm</think>effusion."], False, "Small effusion."),
    (["<think>a</think>Small<think>b</think> effusion."], False, "Small effusion."),
    (["reasoning already open</think>Small effusion."], True, "Small effusion."),
    (["<think>never closed"], False, ""),
    (["Small effusion."], False, "Small effusion."),
])
def test_think_is_stripped_in_every_position(pieces, opened, expected):
    assert "".join(strip_thinking(pieces, opened)).strip() == expected


def test_note_summary_is_problems_medications_follow_up_in_the_notes_own_words():
    """A note is not given to the model: its problems, its medication changes and its follow-up
    are its own lines, each drug and dose exactly as written."""
    note = ("PROGRESS NOTE\nAssessment/Plan:\n1. CHF exacerbation, weight down 1.2 kg after diuresis.\n"
            "Plan: Started bumetanide 2 mg IV twice daily. Stop lisinopril. Repeat BMP tomorrow.")
    r = summarise(note, "hl7:MDM^T02", fake("Problem: THE MODEL WAS CALLED"))
    s = r.structured
    assert s["kind"] == "note" and s["document_type"] == "progress" and not r.model_called
    assert s["problems"] == ["CHF exacerbation, weight down 1.2 kg after diuresis."]
    assert s["medication_changes"] == ["Started bumetanide 2 mg IV twice daily.", "Stop lisinopril."]
    assert s["follow_up"] == ["Repeat BMP tomorrow."]
    assert json.loads(to_json(s)) == s


MODEL = smallest_model()


@pytest.mark.skipif(MODEL is None, reason="the default model package is not installed (make venv)")
def test_real_model_summary_is_structured_grounded_and_terminates():
    from appliance.llm.engine import open_engine

    engine = open_engine(ModelConfig(path=Path(MODEL), n_threads=2, n_gpu_layers=0, n_ctx=2048), sha256_file(MODEL))
    try:
        def gen(prompt, cancel):
            return engine.chat(prompt.messages, grammar=prompt.grammar, max_tokens=120, cancel=cancel)
        pieces: list[str] = []
        lines: list[str] = []
        r = summarise(FINDINGS_ONLY, "hl7:ORU^R01", gen, on_text=pieces.append, on_line=lines.append,
                      model=engine.info.name)
        s = json.loads(to_json(r.structured))
        assert s["kind"] == "radiology" and 1 <= len(s["impression"]) <= 6
        assert all(0 < len(line) <= 400 for line in s["impression"])  # the grammar bounds every line
        text = " ".join(s["impression"]).lower()
        assert "effusion" in text  # the positive finding is never lost
        assert len(pieces) >= 3 and r.tokens > 0
        assert lines == s["impression"]  # what a client was shown is what passed grounding
        for f in s["findings"]:
            a, b = f["span"]
            assert FINDINGS_ONLY[a:b] == f["sentence"]  # every finding points at its source sentence
        # Cancelled before it starts: the model stops at once; the anchored findings still stand.
        stop = threading.Event()
        stop.set()
        r2 = summarise(FINDINGS_ONLY, "hl7:ORU^R01", gen, cancel=stop)
        assert r2.tokens == 0 and "effusion" in " ".join(r2.structured["impression"]).lower()
    finally:
        engine.close()


def test_a_sites_own_examples_come_before_the_built_in_ones(tmp_path):
    from appliance.llm.prompt import RADIOLOGY_EXAMPLES, site_examples

    (tmp_path / "examples.jsonl").write_text(json.dumps(
        {"findings": ["Tiny left apical pneumothorax."], "impression": "Tiny left apical pneumothorax."}) + "\n")
    seen = []

    def gen(prompt, cancel):
        seen.append(prompt.messages)
        yield "Small left pleural effusion."
    summarise(FINDINGS_ONLY, "hl7:ORU^R01", gen, examples=site_examples(tmp_path))
    users = [m["content"] for m in seen[0] if m["role"] == "user"]
    assert "Tiny left apical pneumothorax." in users[0]
    assert RADIOLOGY_EXAMPLES[0][0][0] in users[1]
    assert site_examples(tmp_path / "none") == ()


@pytest.mark.skipif(MODEL is None, reason="the default model package is not installed (make venv)")
def test_appliancectl_summarize_jsonl_offline(tmp_path):
    from appliance.cli.main import main

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": "a", "text": REPORT.replace("cough", "cough; patient Agnes Ferguson")}) + "\n"
                   + json.dumps({"id": "b", "text": "FINDINGS: Lungs are clear. No effusion."}) + "\n")
    assert main(["summarize", "--jsonl", str(src), "--out", str(out), "--model", str(MODEL), "--n-gpu-layers", "0"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"]
    assert rows[0]["summary"]["kind"] == "radiology" and "effusion" in " ".join(rows[0]["summary"]["impression"]).lower()
    assert rows[1]["summary"]["impression"] == [NORMAL_CHEST] and rows[1]["text"].startswith("IMPRESSION:")
    assert "Ferguson" not in out.read_text()  # the pipeline de-identifies before anything else


def test_lab_results_are_summarised_as_their_abnormal_values_without_a_model():
    text = ("CHEM:\nSODIUM: 128 mmol/L (ref 133-145)\nPOTASSIUM: 5.9 mmol/L (ref 3.3-5.1) [H]\n"
            "CREATININE: 0.64 mg/dL (ref 0.51-0.95)\nTROPONIN: <0.01 ng/mL (ref 0.00-0.04)")

    def boom(prompt, cancel):
        raise AssertionError("exact values are copied, never generated")
    r = summarise(text, "hl7:ORU^R01", boom)
    s = r.structured
    assert s["kind"] == "lab" and s["results"] == 4
    assert [(a["test"], a["value"], a["unit"], a["flag"]) for a in s["abnormal"]] == [
        ("SODIUM", "128", "mmol/L", "L"), ("POTASSIUM", "5.9", "mmol/L", "H")]
    assert r.text.splitlines()[1] == "- Sodium 128 mmol/L (low, ref 133-145)"
    normal = summarise("WBC: 5.8 THOU/uL (ref 4.0-10.0)\nRBC: 4.8 MIL/uL (ref 3.9-5.2)\nMCV: 90 fL (ref 79-95)",
                       "hl7:ORU^R01", boom)
    assert normal.structured["impression"] == ["All 3 results within their reference ranges."]


@pytest.mark.parametrize("policy, granuloma, emphysema", [("all", True, True), ("likely", False, True),
                                                           ("none", False, False)])
def test_chronic_findings_of_a_normal_study_follow_the_sites_policy(policy, granuloma, emphysema):
    """model.chronic_in_impression: what an otherwise normal study's impression mentions, one
    line, the chronic finding radiologists most often keep. The findings keep every chronic
    finding whatever the policy."""
    both = ("FINDINGS: Heart size normal. Lungs are clear. Calcified granuloma in the right upper lobe. "
            "Hyperinflated lungs consistent with emphysema.")
    only_granuloma = "FINDINGS: Heart size normal. Lungs are clear. Calcified granuloma in the right upper lobe."
    for report, want in ((both, emphysema), (only_granuloma, granuloma)):
        r = summarise(report, "hl7:ORU^R01", fake("Calcified right upper lobe granuloma.\nEmphysema."), chronic=policy)
        lines = [line.lower() for line in r.structured["impression"]]
        assert lines[0] == "no acute cardiopulmonary abnormality."
        assert len(lines) == (2 if want else 1), lines
        assert not want or ("emphysema" if report == both else "granuloma") in lines[1]
        observations = {f["observation"] for f in r.structured["findings"] if f["affirmed"]}
        assert {"granuloma"} <= observations


def test_findings_stated_indirectly_are_read_and_named_in_the_impressions_register():
    """"The heart is large", a blunted costophrenic angle, a lucency through a rib: findings without
    their name are still findings (an abnormal study is not called normal), named in the
    impression the way a radiologist would; negation is read before the words that state them."""
    assert affirmed("The cardiac silhouette remains moderately enlarged.") == {"cardiomegaly"}
    assert affirmed("Heart is large.") == {"cardiomegaly"}
    assert negated("The heart is not enlarged.") == {"cardiomegaly"} and not affirmed("The heart is not enlarged.")
    assert not affirmed("Heart size is borderline enlarged.")  # measured: radiologists call it normal
    assert affirmed("The left costophrenic sulcus is blunted.") == {"effusion"}
    assert not affirmed("No blunting of the costophrenic angles.")
    assert affirmed("A large pleural air collection is present on the right.") == {"pneumothorax"}
    assert affirmed("Interstitial markings are diffusely prominent throughout both lungs.") == {"interstitial"}
    assert affirmed("Vague lucency through the left 7th rib.") == {"fracture"}
    assert not affirmed("Evaluation for pneumothorax is limited by positioning.")
    [old] = [f for f in read("Old healed right rib fracture.") if f.affirmed]
    assert old.chronic and not [f for f in read("Acute right rib fracture.") if f.affirmed][0].chronic
    r = summarise("FINDINGS: The cardiac silhouette remains moderately enlarged. Lungs are clear. No effusion.",
                  "hl7:ORU^R01", fake("Cardiac silhouette remains moderately enlarged."))
    # Cardiomegaly is not an acute process of the lungs: the impression says so after it.
    assert r.structured["impression"] == ["Stable moderate cardiomegaly.", "No acute pulmonary abnormality."]
    r = summarise("FINDINGS: Heart size normal. The right costophrenic angle is blunted. No pneumothorax.",
                  "hl7:ORU^R01", fake("Blunted right costophrenic angle."))
    assert r.structured["impression"] == ["Blunted right costophrenic angle."]  # an effusion to the reader
    assert not r.flags
    r = summarise("FINDINGS: Heart size normal. Large pleural air collection on the right.", "hl7:ORU^R01",
                  fake("Large pleural air collection on the right."))
    assert r.structured["impression"] == ["Large right pneumothorax."]  # and nothing reassuring after it
    # "Heart size is enlarged" is cardiomegaly by name; what else the sentence says of normal
    # structures is left to the findings, while the place of a finding the name does not carry stays.
    assert _named_lines(["Heart size is moderately enlarged, pulmonary vascularity within normal limits."]) \
        == ["Moderate cardiomegaly."]
    assert _named_lines(["Heart is large."]) == ["Cardiomegaly."]  # "large" names it; it is not its degree
    assert _named_lines(["Redemonstration of right rib deformities from old trauma."]) \
        == ["Stable possible fracture (Redemonstration of right rib deformities from old trauma)."]


def test_normality_stated_after_a_finding_negates_it():
    """"Pulmonary vascular engorgement appears within limits of normal" denies congestion as
    much as "no congestion" does; normality of something else in the sentence does not."""
    assert negated("Heart size and pulmonary vascular engorgement appear within limits of normal.") == {"edema"}
    assert not affirmed("Pulmonary vascularity is within normal limits.")
    assert affirmed("There is a small left pleural effusion and the heart size is normal.") == {"effusion"}
    assert affirmed("A 5 mm nodule in the normal-appearing left lung.") == {"nodule"}
    assert affirmed("Heart is towards upper limits normal for size and may be mild pulmonary vascular congestion.") \
        == {"edema"}


def test_a_chronic_finding_is_named_in_the_reports_own_words_without_a_model():
    """An otherwise normal study's one chronic line is the finding as the report names it, in a
    few words: its qualifiers, not the sentence around it, never a word the report does not use."""
    def line(sentence: str) -> list[str]:
        r = summarise("FINDINGS: Heart size normal. No effusion. " + sentence, "hl7:ORU^R01",
                      fake("THE MODEL WAS CALLED"))
        assert not r.model_called and r.structured["impression_source"] == "rule"
        return r.structured["impression"]

    assert line("There are degenerative changes of the midthoracic spine.") == \
        ["No acute cardiopulmonary abnormality.", "Degenerative changes."]
    assert line("Stable right upper lobe calcified granuloma.")[1] == "Stable granuloma."  # one finding, no site
    assert line("The lungs are mildly hyperinflated with flattening of the diaphragms.")[1] == \
        "Mildly hyperinflated lungs."
    assert line("Hyperinflated lungs consistent with emphysema.")[1] == "Emphysema."
    assert own_words("Pacemaker leads appear intact.", "device") == "Pacemaker leads."
    assert own_words("The leads appear intact.", "device") == ""  # "Leads." alone: the sentence is kept
    assert own_words("No emphysema.", "emphysema") == ""


def test_findings_radiologists_follow_with_no_acute_say_so():
    """A study whose only acute findings are of the kinds radiologists follow with "no acute ..."
    (measured on Open-i train) says it after them; one with a finding that is not does not."""
    r = summarise("FINDINGS: Minimal left basilar subsegmental atelectasis. No pleural effusion.", "hl7:ORU^R01",
                  fake("Minimal left basilar subsegmental atelectasis."))
    assert r.structured["impression"][-1] == "No acute pulmonary abnormality."
    r = summarise("FINDINGS: Left lower lobe atelectasis and small left effusion.", "hl7:ORU^R01",
                  fake("Left lower lobe atelectasis and small left effusion."))
    assert "No acute" not in " ".join(r.structured["impression"])


def test_a_density_explained_away_or_only_hypothetical_is_not_a_finding():
    """A density the report attributes to overlying tissue, a skinfold or artifact, and a nodule
    that "could be obscured", are not findings; an opacity merely exaggerated by overlap is."""
    assert not affirmed("Nodular density projected over the left base XXXX secondary to soft tissue overlay.")
    assert not affirmed("There is a curvilinear density along the right costophrenic sulcus which most likely "
                        "represents a skinfold.")
    assert not affirmed("Bony overlap in the lung apices could obscure a small pulmonary nodule.")
    assert not affirmed("Left costophrenic opacity may represent pleural or pericardial fat.")
    assert not affirmed("Small rounded radiopaque density within the subcutaneous fat represents a fragment.")
    assert affirmed("Left upper lobe nodular opacity may be exaggerated by overlapping bone.") == {"nodule", "opacity"}
    assert affirmed("Right lower lobe opacity related to pneumonia.") == {"opacity", "consolidation"}
