"""Model engines. `open_engine` is the only place that imports llama_cpp."""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..config import ModelConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineInfo:
    name: str  # file name + short hash
    device: str  # "cuda" or "cpu"
    gpu_layers: int
    chat_template: bool
    opens_think: bool = False  # the chat template itself opens <think> (R1 distills)
    device_reason: str = ""  # why this device: what IT reads in the status line and the metrics


class Engine(Protocol):
    info: EngineInfo

    def generate(self, system: str, user: str, *, max_tokens: int, cancel: threading.Event) -> Iterator[str]: ...

    def chat(self, messages: list[dict[str, str]], *, grammar: str | None, max_tokens: int,
             cancel: threading.Event) -> Iterator[str]: ...

    def close(self) -> None: ...


def device_reason(n_gpu_layers: int, offload: bool, lib_dir: Path) -> str:
    """Why the model runs where it does, in words (the CPU package has no CUDA backend at all; the
    CUDA package on a machine whose GPU or driver is missing has one that found no device)."""
    if n_gpu_layers == 0:
        return "model.n_gpu_layers = 0"
    if offload:
        return "CUDA build, GPU found"
    if not any(lib_dir.glob("libggml-cuda*")):
        return "this build of llama-cpp-python has no CUDA backend (CPU package)"
    return "CUDA build, but no usable GPU or driver found"


class LlamaCppEngine:
    def __init__(self, cfg: ModelConfig, sha256: str) -> None:
        import llama_cpp  # heavy native import kept here

        gpu = bool(llama_cpp.llama_supports_gpu_offload())
        layers = cfg.n_gpu_layers if gpu else 0
        reason = device_reason(cfg.n_gpu_layers, gpu, Path(llama_cpp.__file__).parent / "lib")
        if cfg.n_gpu_layers != 0 and not gpu:
            log.warning("GPU offload requested (model.n_gpu_layers=%d) but %s; running on CPU",
                        cfg.n_gpu_layers, reason)
        self._cfg = cfg
        # The binding's own types are narrower than what it accepts (message dicts, **options):
        # at this one boundary it is Any.
        self._llm: Any = llama_cpp.Llama(model_path=str(cfg.path), n_gpu_layers=layers, n_ctx=cfg.n_ctx,
                                    n_threads=cfg.n_threads, n_threads_batch=cfg.n_threads, seed=0,
                                    verbose=False)
        template = (self._llm.metadata or {}).get("tokenizer.chat_template", "")
        has_template = bool(template)
        # R1 distills' templates end the generation prompt with "<think>\n": the answer starts inside it.
        opens = "add_generation_prompt" in template and "<think>" in template.split("add_generation_prompt")[-1]
        self.info = EngineInfo(name=f"{cfg.path.name}@{sha256[:12]}", device="cuda" if gpu and layers else "cpu",
                               gpu_layers=layers, chat_template=has_template, opens_think=opens,
                               device_reason=reason)
        self._grammars: dict[str, object] = {}
        log.info("model loaded: %s device=%s gpu_layers=%d chat_template=%s", self.info.name, self.info.device,
                 layers, has_template)

    def generate(self, system: str, user: str, *, max_tokens: int, cancel: threading.Event) -> Iterator[str]:
        """One instruction, no examples, no grammar (free text)."""
        return self.chat([{"role": "system", "content": system}, {"role": "user", "content": user}],
                         grammar=None, max_tokens=max_tokens, cancel=cancel)

    def chat(self, messages: list[dict[str, str]], *, grammar: str | None, max_tokens: int,
             cancel: threading.Event) -> Iterator[str]:
        """Few-shot chat under a GBNF grammar (bounded output that always terminates)."""
        from llama_cpp.llama_grammar import LlamaGrammar

        g = None
        if grammar:
            g = self._grammars.get(grammar)
            if g is None:
                g = self._grammars[grammar] = LlamaGrammar.from_string(grammar, verbose=False)
        common: dict[str, Any] = dict(max_tokens=max_tokens, temperature=self._cfg.temperature,
                      repeat_penalty=self._cfg.repeat_penalty, stream=True, grammar=g)
        if self.info.chat_template:
            stream = self._llm.create_chat_completion(messages=messages, **common)
            pieces = (c["choices"][0]["delta"].get("content") or "" for c in stream)
        else:  # a base model: the examples as a plain transcript
            text = "\n\n".join(f"{m['role'].upper()}: {m['content']}" for m in messages) + "\n\nASSISTANT:"
            stream = self._llm.create_completion(prompt=text, **common)
            pieces = (c["choices"][0]["text"] for c in stream)
        try:
            for piece in pieces:
                if cancel.is_set():
                    break
                if piece:
                    yield piece
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()

    def close(self) -> None:
        self._llm.close()


def open_engine(cfg: ModelConfig, sha256: str) -> Engine:
    return LlamaCppEngine(cfg, sha256)
