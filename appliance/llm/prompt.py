"""What the model is asked. Anchored on the report: no new facts, numbers as written."""
from __future__ import annotations

SYSTEM = ("You are a clinical documentation assistant. Summarise the report for a clinician in 3 to 5 "
          "short sentences. State only findings that the report states, copy numbers and units exactly "
          "as written, mention abnormal results first, and do not add advice or names.")


def user_prompt(deid_text: str, truncated: bool = False) -> str:
    tail = "\n[report truncated]" if truncated else ""
    return f"Report:\n{deid_text}{tail}\n\nSummary:"


def fit_prompt(deid_text: str, count_tokens, budget: int) -> str:
    """The longest prefix of the report (cut at a line end) whose prompt fits `budget` tokens."""
    prompt = user_prompt(deid_text)
    n = count_tokens(prompt)
    text = deid_text
    while n > budget and text:
        keep = max(int(len(text) * budget / n * 0.95), 0)
        cut = text.rfind("\n", 0, keep)
        text = text[: cut if cut > keep // 2 else keep]
        prompt = user_prompt(text, truncated=True)
        n = count_tokens(prompt)
    return prompt
