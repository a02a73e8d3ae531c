"""Background stages run at a lower CPU priority than intake, so a burst of messages is
acknowledged promptly and the work behind it catches up afterwards."""
from __future__ import annotations

from collections.abc import Callable

import logging
import os
import threading

log = logging.getLogger(__name__)


def lower_priority(nice: int = 10) -> None:
    """Lower the calling thread's priority (Linux threads have their own nice value)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except AttributeError:
        pass  # not Linux
    except OSError as e:
        # The unit's seccomp filter answers EPERM here by design; intake still has its cooperative
        # yield (yield_to_intake), so the thread runs at normal priority.
        log.debug("could not lower a background thread's priority: %s", e.strerror)


def yield_to_intake(busy: Callable[[], bool], stop: threading.Event, limit: float = 30.0) -> None:
    """Wait while intake is acknowledging a burst (one CPython process, one GIL: waiting keeps
    ACK latency low), but never longer than `limit`, so a durable backlog still drains."""
    waited = 0.0
    while busy() and waited < limit and not stop.is_set():
        stop.wait(0.05)
        waited += 0.05
