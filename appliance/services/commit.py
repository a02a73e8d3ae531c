"""Group commit: one writer thread turns many prepared messages into one transaction and
one fsync, then releases each message's result. Under load this is what lets durable
intake keep up with a receiver that stores nothing."""
from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .intake import IntakeResult, IntakeService, Prepared

log = logging.getLogger(__name__)


class CommitQueue:
    def __init__(self, max_batch: int = 256) -> None:
        self._q: queue.Queue[tuple[IntakeService, Prepared, Future[IntakeResult]] | None] = queue.Queue()
        self._max = max_batch
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._stopping = False
        self.batches = 0
        self.committed = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, service: IntakeService, item: Prepared) -> Future[IntakeResult]:
        if self._stopping:
            raise RuntimeError("intake is shutting down")
        f: Future[IntakeResult] = Future()
        self._q.put((service, item, f))
        return f

    def stop(self) -> None:
        """Commit what is queued, then stop."""
        self._stopping = True
        self._q.put(None)
        self._thread.join(30)

    def _run(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._q.put(None)
                    break
                batch.append(nxt)
            service = batch[0][0]
            try:
                results = service.commit_many([item for _s, item, _f in batch])
            # the transaction itself failed: every waiter hears it
            except Exception as e:  # noqa: BLE001
                log.error("group commit of %d messages failed: %s", len(batch), type(e).__name__)
                for _s, _i, f in batch:
                    f.set_exception(e)
                continue
            self.batches += 1
            self.committed += len(batch)
            for (_s, _i, f), r in zip(batch, results, strict=True):
                f.set_result(r)
