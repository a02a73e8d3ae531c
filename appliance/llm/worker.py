"""The summary worker: one generation at a time from the persistent job queue, each line
published once it has passed grounding, every output gated for leaked identifiers before it
is shown or stored."""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import ModelConfig
from ..deid.known import KnownMatcher
from ..deid.leakgate import gate
from ..domain import KnownIdentifiers
from ..priority import lower_priority, yield_to_intake
from ..store.db import Store, SummaryRow, now_ms
from .engine import Engine
from .pipeline import summarise_document
from .summarise import to_json
from .verify import unsupported_numbers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenEvent:
    text: str


@dataclass(frozen=True)
class FinalEvent:
    summary: SummaryRow


@dataclass(frozen=True)
class FailedEvent:
    reason: str


class SummaryHub:
    """Fan-out of live summary events to the clients following a document. A client that
    joins mid-generation first gets the text so far, so it never sees half a summary."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, list[queue.Queue[Any]]] = defaultdict(list)
        self._partial: dict[str, str] = {}

    def subscribe(self, doc_id: str) -> queue.Queue[Any]:
        q: queue.Queue[Any] = queue.Queue()
        with self._lock:
            self._subs[doc_id].append(q)
            if self._partial.get(doc_id):
                q.put(TokenEvent(self._partial[doc_id]))
        return q

    def unsubscribe(self, doc_id: str, q: queue.Queue[Any]) -> None:
        with self._lock:
            if q in self._subs.get(doc_id, []):
                self._subs[doc_id].remove(q)
            if not self._subs.get(doc_id):
                self._subs.pop(doc_id, None)

    def followers(self, doc_id: str) -> int:
        with self._lock:
            return len(self._subs.get(doc_id, []))

    def publish(self, doc_id: str, event: object) -> None:
        with self._lock:
            if isinstance(event, TokenEvent):
                self._partial[doc_id] = self._partial.get(doc_id, "") + event.text
            else:
                self._partial.pop(doc_id, None)
            for q in self._subs.get(doc_id, []):
                q.put(event)


class SummaryWorker:
    def __init__(self, store: Store, engine: Engine, cfg: ModelConfig, hub: SummaryHub,
                 busy: Callable[[], bool] = lambda: False,
                 examples: tuple[tuple[list[str], str], ...] = ()) -> None:
        self._store = store
        self._engine = engine
        self._cfg = cfg
        self._hub = hub
        self._busy = busy  # intake acknowledging a burst: start no new generation meanwhile
        self._examples = examples  # the site's own worked examples (STATE_DIR/examples.jsonl)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="summary-worker", daemon=True)
        self.busy = False
        self.completed = 0
        self.failed = 0
        self.tokens_generated = 0
        self.generation_seconds = 0.0
        self.leaks_redacted = 0
        self.unsupported_numbers = 0
        self.grounding_flags = 0
        self.cancelled = 0
        self.current: str | None = None

    def start(self) -> None:
        n = self._store.requeue_interrupted()
        if n:
            log.info("requeued %d summary jobs interrupted by the last shutdown", n)
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def cancel(self, doc_id: str) -> bool:
        """Stop generating `doc_id` if it is the one in flight (the tokens stop within one)."""
        if self.current == doc_id:
            self._cancel.set()
            return True
        return False

    def stop(self, timeout: float = 30.0) -> None:
        """Finish (or cancel) the generation in flight, then stop."""
        self._stop.set()
        self._cancel.set()
        self._wake.set()
        if self._thread.ident is not None:  # a daemon that failed to start never started it
            self._thread.join(timeout)

    def _run(self) -> None:
        lower_priority()
        while not self._stop.is_set():
            # A fair share: intake bursts delay a generation by at most two seconds, never starve it.
            yield_to_intake(self._busy, self._stop, limit=2.0)
            doc_id = self._store.claim_next_job(requested_only=not self._cfg.summarize_on_arrival,
                                                max_attempts=self._cfg.max_attempts)
            if doc_id is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self.busy = True
            self.current = doc_id
            try:
                self._summarise(doc_id)
            # one bad job must not stop the worker
            except Exception as e:  # noqa: BLE001
                self.failed += 1
                log.error("summary job %s failed: %s", doc_id, type(e).__name__)
                self._store.fail_job(doc_id, f"error={type(e).__name__}", "worker")
                self._hub.publish(doc_id, FailedEvent(f"generation failed ({type(e).__name__})"))
            finally:
                self.busy = False
                self.current = None

    def _summarise(self, doc_id: str) -> None:
        doc = self._store.get_document(doc_id)
        known = self._store.patient_known(doc.patient_ref) or KnownIdentifiers()
        matcher = KnownMatcher(known)  # built once: every line, the summary and its record pass it
        pre = gate(doc.deid_text, known, matcher)  # belt and braces: the model never sees a declared identifier
        started = time.monotonic()
        self._cancel.clear()
        tokens = 0

        def count(_piece: str) -> None:
            nonlocal tokens
            tokens += 1
            # A replacement or a correction makes this summary stale: stop writing it.
            if tokens % 16 == 0 and self._store.document_status(doc_id) == "SUPERSEDED":
                self._cancel.set()

        def line(text: str) -> None:
            # Only lines that passed grounding reach a client, each through the leak gate; the
            # model's raw tokens never do (a line grounding removes must never have been shown).
            self._hub.publish(doc_id, TokenEvent("- " + gate(text, known, matcher).text + "\n"))

        result = summarise_document(self._engine, self._cfg, pre.text, doc.kind, cancel=self._cancel,
                                    on_line=line, on_text=count, examples=self._examples)
        if self._stop.is_set():
            # Interrupted by shutdown: leave the job for the next start.
            self._store.requeue_interrupted()
            return
        if self._cancel.is_set():
            self.cancelled += 1
            self._store.cancel_job(doc_id, "worker")
            log.info("summary cancelled doc=%s", doc_id)
            self._hub.publish(doc_id, FailedEvent("cancelled"))
            return
        # The stored text passes the same gate as the stream (the model may echo a name).
        final = gate(result.text, known, matcher)
        text = final.text.strip()
        if not text:
            raise EmptySummary("the model produced no summary text")
        leaks = pre.hits + final.hits
        unsupported = unsupported_numbers(text, pre.text)
        row = SummaryRow(document_id=doc_id, text=text, model=self._engine.info.name, tokens=result.tokens,
                         leaks_redacted=leaks, created_ms=now_ms(), unsupported_numbers=unsupported,
                         structured=gate(to_json(result.structured), known, matcher).text,
                         # A removed line is counted in the structure, never quoted to a reader.
                         flags=tuple(f.render() for f in result.flags if f.text))
        self._store.save_summary(row, "worker")
        self.completed += 1
        self.tokens_generated += result.tokens
        self.generation_seconds += time.monotonic() - started
        self.leaks_redacted += leaks
        self.unsupported_numbers += len(unsupported)
        self.grounding_flags += len(result.flags)
        log.info("summary done doc=%s tokens=%d seconds=%.2f leaks_redacted=%d unsupported_numbers=%d flags=%d",
                 doc_id, result.tokens, time.monotonic() - started, leaks, len(unsupported), len(result.flags))
        self._hub.publish(doc_id, FinalEvent(row))


class EmptySummary(Exception):
    """Never stored as done: an empty summary is a failed job."""
