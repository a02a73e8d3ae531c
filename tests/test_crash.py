"""An uncaught exception, in the main thread or another, is logged without its message."""
from __future__ import annotations

import subprocess
import sys


def test_uncaught_exceptions_never_print_their_message():
    code = (
        "import logging, threading, sys\n"
        "logging.basicConfig(stream=sys.stderr)\n"
        "from appliance import crash\n"
        "crash.install()\n"
        "def boom():\n"
        "    raise ValueError('Invalid value for PN: WHITAKER^ELEANOR')\n"
        "t = threading.Thread(target=boom, name='worker'); t.start(); t.join()\n"
        "boom()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "WHITAKER" not in r.stderr and "ELEANOR" not in r.stderr
    assert "uncaught in thread worker: ValueError at" in r.stderr
    assert "uncaught ValueError at" in r.stderr and "boom" in r.stderr
