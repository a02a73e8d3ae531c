"""The clinician's client left running: the real `appliance-client` program (offscreen) against a
real daemon holding 200 documents, refreshing every second for --minutes, with the daemon
restarted once half way. Printed: whether the client was alive at the end (and its exit code),
its memory at start, end and peak and the slope over the second half (MB per minute), and the
seconds from the daemon's return to the client's "connection restored".

    python bench/client_soak.py [--minutes 10] [--documents 200]

Last line: one JSON object."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import intake_only_state, start_daemon, stop_daemon  # noqa: E402


def oru(n: int) -> bytes:
    return (f"MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261207090000||ORU^R01^ORU_R01|SOAK-{n}|P|2.5.1\r"
            f"PID|1||SOAK{n:05d}^^^GH^MR||Quennell{n}^Aurelie||19610203|F\r"
            f"OBR|1|O{n}|A{n}|71020^XR CHEST 2 VIEWS^CPT||||||||||||||||||CR|||||^^^^^{'S' if n % 7 == 0 else 'R'}\r"
            f"OBX|1|TX|18782-3^Study^LN||FINDINGS: Small left effusion, {n % 9 + 1} mm. Lungs otherwise clear.||||||F\r"
            ).encode()


def run(minutes: float, documents: int) -> dict:
    import psutil

    from appliance.v1 import appliance_pb2 as pb

    with tempfile.TemporaryDirectory() as tmp:
        config = intake_only_state(Path(tmp) / "state")
        daemon = start_daemon(config, Path(tmp) / "d1.log")
        stub = daemon.stub()
        for n in range(documents):
            stub.SubmitHL7(pb.SubmitHL7Request(message=oru(n)), timeout=30)
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(Path(tmp) / "home")}
        seconds = minutes * 60
        client = subprocess.Popen([sys.executable, "-m", "appliance.client.main", "--config", str(config),
                                   "--refresh-seconds", "1", "--quit-after", str(seconds)],
                                  stderr=subprocess.PIPE, text=True, env=env)
        events: list[tuple[float, str]] = []

        def read() -> None:
            assert client.stderr is not None
            for line in client.stderr:
                events.append((time.monotonic(), line.strip()))
        threading.Thread(target=read, daemon=True).start()
        proc = psutil.Process(client.pid)
        samples: list[tuple[float, float]] = []
        t0 = time.monotonic()
        restarted_at = None
        stopped_at = None
        while client.poll() is None and time.monotonic() - t0 < seconds + 60:
            try:
                samples.append((time.monotonic() - t0, proc.memory_info().rss / 2**20))
            except psutil.NoSuchProcess:
                break
            if restarted_at is None and time.monotonic() - t0 > seconds / 2:
                stop_daemon(daemon)
                stopped_at = time.monotonic()
                time.sleep(3)  # the client sees it gone
                daemon = start_daemon(config, Path(tmp) / "d2.log")
                restarted_at = time.monotonic()  # the daemon answers health checks again
            time.sleep(5)
        code = client.wait(120)
        stop_daemon(daemon)
    # The client may reconnect before start_daemon() has seen SERVING itself: then it took 0 s.
    restored = [t for t, line in events if "connection restored" in line and stopped_at and t >= stopped_at]
    second = [(t, m) for t, m in samples if t >= seconds / 2 + 10]
    slope = 0.0
    if len(second) >= 2:
        n = len(second)
        mt = sum(t for t, _ in second) / n
        mm = sum(m for _, m in second) / n
        den = sum((t - mt) ** 2 for t, _ in second) or 1.0
        slope = sum((t - mt) * (m - mm) for t, m in second) / den * 60
    return {"minutes": minutes, "documents": documents, "refresh_s": 1, "client_exit_code": code,
            "crashed": code != 0, "rss_start_mb": round(samples[0][1], 1) if samples else None,
            "rss_end_mb": round(samples[-1][1], 1) if samples else None,
            "rss_peak_mb": round(max(m for _, m in samples), 1) if samples else None,
            "rss_slope_mb_per_min_second_half": round(slope, 2),
            "recovery_s_after_restart": round(max(0.0, restored[0] - restarted_at), 2) if restored and restarted_at
            else None,
            "client_stderr": [line for _, line in events][-5:]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--documents", type=int, default=200)
    args = ap.parse_args(argv)
    figures = run(args.minutes, args.documents)
    print(f"client {'crashed' if figures['crashed'] else 'ran'} {args.minutes} min over {args.documents} documents; "
          f"RSS {figures['rss_start_mb']} -> {figures['rss_end_mb']} MB (slope {figures['rss_slope_mb_per_min_second_half']}"
          f" MB/min); back {figures['recovery_s_after_restart']} s after the daemon's restart")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
