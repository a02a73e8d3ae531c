"""DICOM intake throughput: the appliance (C-STORE Success only after the report is parsed and
committed to the encrypted store) vs dcmtk's storescp (writes each dataset to a file, no
parsing, no fsync), same SR files, same client (dcmtk storescu, one association), one run.
Last line: one JSON object.

    python bench/dicom_intake.py [--reports 500]"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from dicom_sr import make_sr  # noqa: E402
from hl7_intake import free_port, start_appliance, wait_idle, wait_port  # noqa: E402


def reports(folder: Path, n: int) -> list[Path]:
    folder.mkdir()
    out = []
    for i in range(n):
        p = folder / f"sr{i:05d}.dcm"
        p.write_bytes(make_sr(patient_id=f"B{i:06d}", impression=f"Stable appearance, report {i}."))
        out.append(p)
    return out


# dcmtk leaves Nagle's algorithm on unless told; with it every small PDU waits for a delayed
# ACK (~40 ms) and both servers would measure the TCP stack, not themselves.
NODELAY = {**os.environ, "TCP_NODELAY": "1"}


def send(port: int, aec: str, files: list[Path]) -> tuple[float, int]:
    t = time.perf_counter()
    r = subprocess.run(["storescu", "-v", "-aec", aec, "127.0.0.1", str(port), *map(str, files)],
                       capture_output=True, text=True, timeout=1800, env=NODELAY)
    secs = time.perf_counter() - t
    return secs, (r.stdout + r.stderr).count("Received Store Response (Success)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reports", type=int, default=500)
    args = ap.parse_args(argv)
    if not shutil.which("storescu") or not shutil.which("storescp"):
        raise SystemExit("dcmtk is needed (apt-get install dcmtk; `make deps` installs it)")
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        files = reports(tmp / "in", args.reports)
        app, _ = start_appliance(tmp)
        from appliance.config import load_config

        app_port = load_config(tmp / "state" / "appliance.toml").dicom.port
        wait_port(app_port, app)
        (tmp / "peer").mkdir()
        peer_port = free_port()
        peer = subprocess.Popen(["storescp", "-od", str(tmp / "peer"), "-aet", "PEER", str(peer_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=NODELAY)
        wait_port(peer_port, peer)
        try:
            a_secs, a_ok = send(app_port, "APPLIANCE", files)
            drained = wait_idle(app.pid)
            p_secs, p_ok = send(peer_port, "PEER", files)
        finally:
            for p in (app, peer):
                p.terminate()
                p.wait(30)
    a_rate, p_rate = a_ok / a_secs, p_ok / p_secs
    print(f"{'':<10} {'reports/s':>10} {'stored':>7}")
    print(f"{'appliance':<10} {a_rate:10.0f} {a_ok:7d}")
    print(f"{'storescp':<10} {p_rate:10.0f} {p_ok:7d}")
    print(f"ratio appliance/storescp: {a_rate / p_rate:.2f}")
    print(json.dumps({"reports": args.reports, "cpus": os.cpu_count(),
                      "appliance_reports_s": round(a_rate, 1), "appliance_success": a_ok,
                      "appliance_backlog_drain_s": round(drained, 1),
                      "storescp_reports_s": round(p_rate, 1), "storescp_success": p_ok,
                      "ratio": round(a_rate / p_rate, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
