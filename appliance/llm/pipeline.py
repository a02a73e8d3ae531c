"""The one call that turns a de-identified document into its summary, shared by the daemon's
worker and `appliancectl summarize`, so that both give the same summary for the same document
and config: the model's settings, its context budget, the chronic-findings policy and the
site's worked examples all come from here."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from ..config import ModelConfig
from .engine import Engine
from .prompt import Prompt
from .summarise import Result, summarise

# Room the template, the system prompt and the worked examples take in the context, in tokens.
PROMPT_OVERHEAD_TOKENS = 900


def source_budget(cfg: ModelConfig) -> int:
    """Characters of report text that fit what the context leaves (three or more a token)."""
    return max(800, (cfg.n_ctx - cfg.max_tokens - PROMPT_OVERHEAD_TOKENS) * 3)


def summarise_document(engine: Engine, cfg: ModelConfig, text: str, kind: str, *,
                       cancel: threading.Event | None = None,
                       on_line: Callable[[str], None] | None = None,
                       on_text: Callable[[str], None] | None = None,
                       examples: tuple[tuple[list[str], str], ...] = ()) -> Result:
    def generate(prompt: Prompt, c: threading.Event) -> Iterator[str]:
        return engine.chat(prompt.messages, grammar=prompt.grammar, max_tokens=cfg.max_tokens, cancel=c)

    return summarise(text, kind, generate, cancel=cancel, on_text=on_text, on_line=on_line,
                     max_source_chars=source_budget(cfg), model=engine.info.name,
                     opens_think=engine.info.opens_think, examples=examples, chronic=cfg.chronic_in_impression)
