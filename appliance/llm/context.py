"""ConText (Harkema et al. 2009; NegEx, Chapman et al. 2001): whether a concept a sentence
mentions is asserted, or negated, historical, hypothetical, about a family member or resolved.

Trigger phrases open a scope forward ("no", "history of", "if") or backward ("... is ruled out",
"... has resolved") that runs to the end of the sentence or to a termination term ("but",
"however", "which", a semicolon). The lexicon is the published ConText one, cut to the triggers
clinical reports use, plus the pseudo-triggers that look like one and are not ("no change in",
"not only", "gram-negative").

Why not medspaCy's ConText: bench/context_vs_medspacy.py runs both on the same 166 critical-
finding mentions of the 120 summaries-dev reports, the reports' critical flag as the truth
(2026-12-07): both find all 45 critical reports; medspaCy (1.3.1, default rules, PyRuSH
sentences) raises 8 false alarms to this one's 1 (precision 0.849 against 0.978: it misses
"ruled out" after the concept, indications phrased "CT for ...", "first-degree relative") and
takes 1.7 s against 0.006 s. These rules were written against the same reports, so the margin
is an upper bound; what decided it is that medspaCy adds spaCy and about sixty packages to an
audited appliance for the same algorithm, with no measured gain to pay for them."""
from __future__ import annotations

import re
from dataclasses import dataclass

# (category, direction, pattern). Direction "fwd" scopes to the right, "bwd" to the left, "adj"
# to the left over at most one word.
_TRIGGERS: list[tuple[str, str, str]] = [
    ("negated", "fwd", r"no|not|without|w/o|negative for|free of|clear of|absence of|absent|no evidence of|"
                       r"no (?:radiographic |sonographic |ct |mr |imaging )?(?:evidence|sign|signs|findings?) (?:of|"
                       r"to suggest|for)|"
                       r"rules? out|ruled out|denies|denied|deny|never|nor|neither|resolution of|no longer|"
                       r"(?:could|may|might|can) obscure|unremarkable for|fails? to (?:demonstrate|reveal)|"
                       r"(?:is |are |was |were )?negative (?:for|of)|excluded"),
    ("negated", "bwd", r"(?:is|are|was|were|has been|have been)\s+(?:not\s+(?:seen|identified|present|demonstrated|"
                       r"visualized|detected|appreciated)|excluded|ruled out|absent|unlikely)|"
                       r"not (?:seen|identified|demonstrated|detected|present|appreciated)|ruled out|"
                       r"(?:is|was|were|are) negative|unlikely|absent|excluded"),
    ("historical", "fwd", r"history of|hx of|h/o|(?:past|prior|previous|remote) (?:history of|episode of|episodes of)|"
                          r"previously (?:treated|diagnosed|had)|known history of|in the past"),
    ("hypothetical", "fwd", r"if|should (?:he|she|they|the patient) (?:develop|have|experience)|"
        r"return (?:to (?:the )?ed )?(?:if|for)|"
                            r"to (?:rule out|exclude|evaluate for|assess for)|r/o|rule out|evaluate for|evaluation for|"
                            r"assess(?:ment)? for|screen(?:ing)? for|risk of|risk for|precautions|in case of|"
                            r"signs of|symptoms of|concern(?:ed)? that .{0,20} (?:may|might) develop|prophylaxis|"
                            r"(?:ct|cta|mri?|mra|study|exam|examination|protocol|angiogram|scan|ultrasound|us|x-?ray|"
                            r"radiograph|imaging|work-?up)(?: \w+){0,3} (?:for|to assess|to evaluate)"),
    # Right after the concept only: "DVT prophylaxis", "stroke protocol", "cancer screening"
    # ("thrombus, high embolic risk" asserts the thrombus).
    ("hypothetical", "adj", r"prophylaxis|precautions|screening|protocol|work-?up"),
    ("family", "fwd", r"family history|fhx|family hx|(?:first|second)[- ]degree relatives?|relatives? (?:with|had|has)|"
                      r"family members? (?:with|had|has)|(?:his|her|the patient's) (?:mother|father|sister|brother|"
                      r"son|daughter|"
                      r"aunt|uncle|grandmother|grandfather|parent|sibling)|(?:mother|father|sister|brother|"
                      r"sibling)s? (?:had|has|with|died)"),
    ("resolved", "bwd", r"(?:has |have |had )?(?:now |since |completely |fully )?resolved|no longer (?:seen|present|"
        r"visible)|"
                        r"(?:has|have) cleared"),
    ("resolved", "fwd", r"resolved|resolution of|resolving"),
]
# Phrases that contain a trigger and are not one.
_PSEUDO = re.compile(r"(?i)\b(?:no (?:change|significant change|interval change|increase|decrease) (?:in|of)|not only|"
                     r"gram[- ]negative|no further|not certain whether|not rule out|cannot be (?:excluded|ruled out)|"
                     r"can ?not be excluded|without (?:difficulty|complication)|not (?:been )?(?:yet )?(?:formed|"
                     r"performed)|"
                     r"nothing by mouth|if any|whether or not)\b")
_TERMINATE = re.compile(r"(?i)[;:]|\b(?:but|however|although|though|yet|which|aside from|apart from|except|"
                        r"otherwise|nevertheless|still|now|presents?|presented|presenting|complains?|today|currently)\b")
_COMPILED = [(cat, d, re.compile(rf"(?i)(?<![\w-])(?:{p})(?![\w-])")) for cat, d, p in _TRIGGERS]
# A forward scope does not run on forever (NegEx's window; ConText's sentence): this many words.
_FWD_WORDS = 12
_BWD_WORDS = 8


@dataclass(frozen=True)
class Assertion:
    negated: bool = False
    historical: bool = False
    hypothetical: bool = False
    family: bool = False
    resolved: bool = False

    @property
    def asserted(self) -> bool:
        """A present, positive statement about this patient."""
        return not (self.negated or self.historical or self.hypothetical or self.family or self.resolved)

    def labels(self) -> list[str]:
        return [k for k in ("negated", "historical", "hypothetical", "family", "resolved") if getattr(self, k)]


def _words_between(text: str) -> int:
    return len(re.findall(r"\w+", text))


def assertion(sentence: str, start: int, end: int) -> Assertion:
    """The assertion of the concept at sentence[start:end]."""
    masked = _PSEUDO.sub(lambda m: "_" * len(m.group()), sentence)
    found: dict[str, bool] = {}
    for cat, direction, rx in _COMPILED:
        if found.get(cat):
            continue
        for m in rx.finditer(masked):
            if direction == "fwd" and m.end() <= start:
                gap = masked[m.end():start]
                if not _TERMINATE.search(gap) and _words_between(gap) <= _FWD_WORDS:
                    found[cat] = True
                    break
            elif direction in ("bwd", "adj") and m.start() >= end:
                gap = masked[end:m.start()]
                limit = _BWD_WORDS if direction == "bwd" else 1
                if not _TERMINATE.search(gap) and _words_between(gap) <= limit:
                    found[cat] = True
                    break
    return Assertion(**{k: True for k in found})
