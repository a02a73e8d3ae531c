"""Background stages run at a lower CPU priority than intake, so a burst of messages is
acknowledged promptly and the work behind it catches up afterwards."""
from __future__ import annotations

import os
import threading


def lower_priority(nice: int = 10) -> None:
    """Lower the calling thread's priority (Linux threads have their own nice value)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError):
        pass  # not Linux, or not permitted: run at normal priority
