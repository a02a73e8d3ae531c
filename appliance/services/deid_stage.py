"""De-identification off the acknowledgement path. MLLP messages are acknowledged once
parsed and committed; this stage then de-identifies them in batches and queues their
summaries. Documents left PARSED by a crash are picked up at the next start."""
from __future__ import annotations

from collections.abc import Callable

import logging
import threading

from ..deid import deidentify
from ..deid.budget import DeidTimeout, time_budget
from ..store.db import Store
from ..priority import lower_priority, yield_to_intake

log = logging.getLogger(__name__)


class DeidStage:
    def __init__(self, store: Store, secret: bytes, on_ready: Callable[[str], object],
                 busy: Callable[[], bool] = lambda: False, time_budget_s: float = 30.0) -> None:
        self._store = store
        self._budget = time_budget_s
        self._secret = secret
        self._on_ready = on_ready
        self._busy = busy  # intake is acknowledging messages right now: leave it the CPU
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deid-stage", daemon=True)
        self.done = 0
        self.failed = 0  # documents set aside as DEID_FAILED

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(30)

    def drain(self) -> int:
        """De-identify everything waiting now; returns how many. Safe to call from any thread."""
        n = 0
        while batch := self._store.claim_parsed():
            results = []
            for doc_id, patient_ref, text, known, exam in batch:
                try:
                    stored = self._store.patient_known(patient_ref)
                    with time_budget(self._budget):
                        full = known.merged(stored) if stored else known
                        d = deidentify(text, full, self._secret)
                        exam = deidentify(exam, full, self._secret).text if exam else ""
                except Exception as e:  # noqa: BLE001 - one poison document must not stop the rest
                    # The exception's message may quote the report: only its type is kept.
                    reason = (f"de-identification took longer than its budget of {self._budget:g} s "
                              "(deid.time_budget_s); not retried" if isinstance(e, DeidTimeout)
                              else f"de-identification raised {type(e).__name__}")
                    log.error("document %s set aside: %s", doc_id, reason)
                    self._store.fail_deid(doc_id, reason, "deid-stage")
                    self.failed += 1
                    continue
                results.append((doc_id, d.text, len(d.spans), d.surrogates, exam))
            self._store.complete_deid(results, "deid-stage")
            n += len(results)
            for doc_id, *_ in results:
                self._on_ready(doc_id)
        return n

    def _run(self) -> None:
        lower_priority()
        while not self._stop.is_set():
            yield_to_intake(self._busy, self._stop)
            try:
                n = self.drain()
            # keep going; the documents stay PARSED and are retried
            except Exception as e:  # noqa: BLE001
                log.error("de-identification batch failed: %s", type(e).__name__)
                n = 0
            self.done += n
            if not n:
                self._wake.wait(1.0)
                self._wake.clear()
