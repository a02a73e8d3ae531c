"""Numbers in a summary are checked against the report the model read."""
from __future__ import annotations

import pytest

from appliance.llm.verify import normalise, unsupported_numbers

REPORT = ("FINDINGS: A 1.4 cm right hilar node. BP 120/80 mmHg. WBC 12,300/uL. pH 7.40. "
          "Effusion 0.5 L drained. Compared with 03/12/2023.")


@pytest.mark.parametrize("summary,flagged", [
    ("A 1.4 cm node; BP 120/80; WBC 12300; pH 7.4; 0.5 L drained.", ()),
    ("A 0.9 cm node.", ("0.9",)),          # the classic misstatement
    ("WBC 12,300 and 14,000.", ("14,000",)),
    ("1. Node 1.4 cm\n2. Effusion .5 L", ()),  # list markers are not figures
    ("Prior study 03/12/2023; new study 04/12/2023.", ("04",)),
    ("No numbers at all.", ()),
])
def test_unsupported_numbers(summary, flagged):
    assert unsupported_numbers(summary, REPORT) == flagged


def test_normalise():
    assert normalise("1,200") == normalise("1200") == "1200"
    assert normalise("1.40") == normalise("1.4") == "1.4"
    assert normalise(".5") == normalise("0.5") == "0.5"
    assert normalise("07") == "7"
