"""The periodic retention purge: a background thread at low priority, in bounded batches."""
from __future__ import annotations

import logging
import threading
import time

from ..config import RetentionConfig
from ..store.db import Store
from ..store.lifecycle import Purged, purge
from ..priority import lower_priority

log = logging.getLogger(__name__)


class RetentionTask:
    def __init__(self, store: Store, cfg: RetentionConfig) -> None:
        self._store = store
        self._cfg = cfg
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self.last_run_unix: float = 0.0
        self.last: Purged | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # a daemon that failed to start never started it
            self._thread.join(30)

    def run_once(self) -> Purged:
        result = purge(self._store, days=self._cfg.days, audit_days=self._cfg.audit_days, batch=self._cfg.batch)
        self.last_run_unix, self.last = time.time(), result
        log.info("retention purge: %s", result.describe())
        return result

    def _run(self) -> None:
        lower_priority()
        # Zero retention purges as summaries are delivered: a short period, whatever the interval.
        period = min(self._cfg.interval_s, 60) if self._cfg.days == 0 else self._cfg.interval_s
        while not self._stop.wait(5 if not self.last_run_unix else period):
            try:
                self.run_once()
            except Exception as e:  # noqa: BLE001 - the next run tries again
                log.error("retention purge failed: %s", type(e).__name__)
