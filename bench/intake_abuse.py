"""Intake under attack: one address opens idle and byte-a-second MLLP connections and silent
DICOM connections while a second address (another loopback address) sends ORUs one per new
connection and a PACS there echoes. Printed: the good sender's accepted count and latency
(p50/p99, seconds from connect to ACK), the attacker's refused and closed connections, the
daemon's peak RSS. A real daemon (`appliancectl init` state, the smallest model, summaries off).

    python bench/intake_abuse.py [--idle 40] [--slow 40] [--dicom 30] [--messages 100]

Last line: one JSON object."""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from appliance.config import load_config  # noqa: E402
from conftest import intake_only_state, start_daemon, stop_daemon  # noqa: E402
from mllp_client import MllpClient, msa, trickle  # noqa: E402


def oru(n: int) -> bytes:
    return (f"MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261201120000||ORU^R01|GOOD-{n}|P|2.5.1\r"
            f"PID|1||MRN{n}^^^GH^MR||Doe^Pat||19600101|F\rOBR|1|O{n}|A{n}|71020^CHEST XRAY^CPT\r"
            "OBX|1|TX|18782-3^Study^LN||FINDINGS: Small left effusion.||||||F\r").encode()


def big_oru(segments: int) -> bytes:
    obx = "".join(f"OBX|{i}|TX|18782-3^Study^LN||Line {i} of the report.||||||F\r" for i in range(1, segments + 1))
    return ("MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261201120000||ORU^R01|BIG-{n}|P|2.5.1\r"
            "PID|1||MRN1^^^GH^MR||Doe^Pat||19600101|F\rOBR|1|O1|A1|71020^CHEST XRAY^CPT\r" + obx).encode()


def heavy_phase(port: int, messages: int, peak: list[int]) -> dict:
    """One address sends what is heavy rather than slow: messages of 100,000 segments, a frame of
    5,000 messages, and 32 frames of 15 MB left unfinished; the second address's latency is
    measured meanwhile."""
    stop = threading.Event()
    outcomes = {"big": [], "batch": "", "unfinished_refused": 0}

    def big_sender() -> None:
        for n in range(3):
            if stop.is_set():
                return
            try:
                c = MllpClient(port, timeout=120)
                ack = c.request(big_oru(100_000).replace(b"BIG-{n}", f"BIG-{n}".encode()))
                c.close()
                outcomes["big"].append(msa(ack)[1] if ack else "closed")
            except OSError:
                outcomes["big"].append("closed")

    def batch_sender() -> None:
        try:
            c = MllpClient(port, timeout=120)
            ack = c.request(b"".join(oru(100_000 + i) for i in range(5000)))
            c.close()
            outcomes["batch"] = msa(ack)[1] if ack else "closed"
        except OSError:
            outcomes["batch"] = "closed"

    def unfinished() -> None:
        socks = []
        chunk = b"x" * (1 << 20)
        for _ in range(32):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(b"\x0b" + big_oru(10)[:100])
                for _ in range(15):
                    s.sendall(chunk)
                socks.append(s)
            except OSError:
                outcomes["unfinished_refused"] += 1
        for s in socks:
            s.settimeout(0.5)
            try:
                if b"MSA|AE" in s.recv(4096):
                    outcomes["unfinished_refused"] += 1
            except OSError:
                pass
        stop.wait(5)
        for s in socks:
            s.close()

    threads = [threading.Thread(target=f, daemon=True) for f in (big_sender, batch_sender, unfinished)]
    peak_before = peak[0]
    for t in threads:
        t.start()
    time.sleep(0.5)
    latencies = []
    for n in range(messages):
        t0 = time.perf_counter()
        try:
            c = MllpClient(port, timeout=30, source="127.0.0.2")
            ack = c.request(oru(200_000 + n))
            c.close()
            if ack and msa(ack)[1] == "AA":
                latencies.append(time.perf_counter() - t0)
        except OSError:
            pass
    stop.set()
    for t in threads:
        t.join(180)
    latencies.sort()
    return {"heavy_good_accepted": len(latencies),
            "heavy_good_p50_s": round(statistics.median(latencies), 4) if latencies else None,
            "heavy_good_p99_s": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 4) if latencies else None,
            "heavy_big_acks": outcomes["big"], "heavy_batch_5000_ack": outcomes["batch"],
            "heavy_unfinished_refused": outcomes["unfinished_refused"],
            "heavy_peak_rss_mb": round(max(peak[0], peak_before) / 2**20, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", type=int, default=40)
    ap.add_argument("--slow", type=int, default=40)
    ap.add_argument("--dicom", type=int, default=30)
    ap.add_argument("--messages", type=int, default=100)
    args = ap.parse_args(argv)
    import psutil
    from pynetdicom import AE

    with tempfile.TemporaryDirectory() as tmp:
        config = intake_only_state(Path(tmp) / "state")
        run = start_daemon(config, Path(tmp) / "d.log")
        cfg = load_config(config)
        stop = threading.Event()
        peak = [0]
        proc = psutil.Process(run.proc.pid)
        time.sleep(1.0)
        rss_at_start = proc.memory_info().rss

        def watch() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                time.sleep(0.2)
        threading.Thread(target=watch, daemon=True).start()
        attack: list[socket.socket] = []
        refused = 0
        try:
            for _ in range(args.idle):
                attack.append(socket.create_connection(("127.0.0.1", cfg.mllp.port), timeout=10))
            slow = [socket.create_connection(("127.0.0.1", cfg.mllp.port), timeout=10) for _ in range(args.slow)]
            attack += slow
            attack += [socket.create_connection(("127.0.0.1", cfg.dicom.port), timeout=10) for _ in range(args.dicom)]

            def slow_sender(s: socket.socket) -> None:
                nonlocal refused
                if trickle(s, stop, 1.0) is not None:
                    refused += 1
            for s in slow:
                threading.Thread(target=slow_sender, args=(s,), daemon=True).start()
            time.sleep(1.0)
            latencies, accepted, turned_away = [], 0, 0
            for n in range(args.messages):
                t = time.perf_counter()
                try:
                    c = MllpClient(cfg.mllp.port, timeout=30, source="127.0.0.2")
                    try:
                        ack = c.request(oru(n))
                    finally:
                        c.close()
                except OSError:  # closed on arrival: every slot was taken
                    turned_away += 1
                    continue
                latencies.append(time.perf_counter() - t)
                accepted += bool(ack and msa(ack)[1] == "AA")
            ae = AE(ae_title="PACS2")
            ae.add_requested_context("1.2.840.10008.1.1")
            echoes, echo_s = 0, []
            for _ in range(10):
                t = time.perf_counter()
                assoc = ae.associate("127.0.0.1", cfg.dicom.port, ae_title="APPLIANCE", bind_address=("127.0.0.2", 0))
                if assoc.is_established:
                    status = assoc.send_c_echo()
                    echoes += bool(status) and status.Status == 0
                    assoc.release()
                echo_s.append(time.perf_counter() - t)
            for s in attack:
                s.close()
            heavy = heavy_phase(cfg.mllp.port, args.messages, peak)
        finally:
            stop.set()
            for s in attack:
                s.close()
            stop_daemon(run)
    latencies.sort()
    figures = {"good_messages": args.messages, "good_accepted": accepted, "good_turned_away": turned_away,
               "good_p50_s": round(statistics.median(latencies), 4) if latencies else None,
               "good_p99_s": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 4) if latencies else None,
               "attacker_idle": args.idle, "attacker_slow": args.slow, "attacker_dicom": args.dicom,
               "attacker_slow_closed": refused, "pacs_echoes_ok": echoes,
               "pacs_echo_p99_s": round(sorted(echo_s)[-1], 4), "peak_rss_mb": round(peak[0] / 2**20, 1),
               "rss_at_start_mb": round(rss_at_start / 2**20, 1)}
    figures.update(heavy)
    print(f"good sender: {accepted}/{args.messages} AA ({turned_away} turned away), p50 {figures['good_p50_s']} s, p99 {figures['good_p99_s']} s; "
          f"PACS echoes {echoes}/10; trickling connections closed {refused}/{args.slow}; "
          f"peak RSS {figures['peak_rss_mb']} MB")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
