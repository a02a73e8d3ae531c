"""HL7 intake throughput: the appliance (ACK only after the message is committed to the
encrypted store) vs python-hl7's asyncio MLLP server (parse and ACK, nothing stored), same
messages, same client, same machine, one run. Last line: one JSON object.

    python bench/hl7_intake.py [--messages 3000] [--workload adt|oru|both]"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "hl7corpus"
VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def workload(kind: str, n: int, run: str) -> list[bytes]:
    """n messages with unique control ids (so every one is stored), from real corpus files."""
    if kind == "adt":
        raw = (CORPUS / "nextgen-connect" / "simplesender_TestADT.txt").read_bytes().decode()
        base = [m for m in raw.replace("\r\n", "\r").replace("\n", "\r").split("MSH|") if m.strip()]
        base = ["MSH|" + m.strip("\r") for m in base]
    else:
        base = [(CORPUS / "nextgen-connect" / "donkey_large.hl7").read_bytes().decode(),
                (ROOT / "appliance" / "samples" / "oru_r01_ct_chest.hl7").read_bytes().decode()]
        base = [b.replace("\r\n", "\r").replace("\n", "\r").strip("\r") for b in base]
    out = []
    for i in range(n):
        segs = base[i % len(base)].split("\r")
        f = segs[0].split("|")
        f[9] = f"{run}-{kind}-{i}"
        segs[0] = "|".join(f)
        out.append(("\r".join(segs) + "\r").encode())
    return out


async def drive(port: int, messages: list[bytes], connections: int) -> tuple[float, int]:
    queue = list(reversed(messages))
    acks = 0

    async def conn() -> None:
        nonlocal acks
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        while queue:
            writer.write(VT + queue.pop() + FS + CR)
            await writer.drain()
            data = await reader.readuntil(FS + CR)
            if b"MSA|AA" in data or b"MSA|CA" in data:
                acks += 1
        writer.close()

    t = time.perf_counter()
    await asyncio.gather(*(conn() for _ in range(connections)))
    return time.perf_counter() - t, acks


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def start_appliance(tmp: Path) -> tuple[subprocess.Popen, int]:
    sys.path.insert(0, str(ROOT))
    from appliance.cli.init import init_state

    port = free_port()
    cfg = init_state(tmp / "state", grpc_port=free_port(), mllp_port=port, dicom_port=free_port(),
                     metrics_port=free_port())
    # Intake is measured, not the model: summaries wait until someone asks for one.
    cfg.write_text(cfg.read_text().replace("max_tokens = 192", "max_tokens = 192\nsummarize_on_arrival = false"))
    log = (tmp / "applianced.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "appliance.daemon", "--config", str(cfg), "--log-level", "WARNING"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    wait_port(port, proc)
    return proc, port


def wait_idle(pid: int, limit: float = 600.0) -> float:
    """Wait until the appliance has worked off what the last run queued (de-identification,
    summaries), so the next run starts on an idle machine. Returns seconds waited."""
    import psutil

    proc = psutil.Process(pid)
    t = time.monotonic()
    proc.cpu_percent(None)
    while time.monotonic() - t < limit:
        time.sleep(1.0)
        if proc.cpu_percent(None) < 5.0:
            break
    return time.monotonic() - t


def start_peer() -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "hl7_peer_server.py"), str(port)],
                            stdout=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--workload", choices=["adt", "oru", "both"], default="both")
    args = ap.parse_args(argv)
    kinds = ["adt", "oru"] if args.workload == "both" else [args.workload]
    figures: dict = {"messages": args.messages, "cpus": os.cpu_count()}
    print(f"{'workload':<6} {'conns':>5} {'appliance msg/s':>16} {'python-hl7 msg/s':>17} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        app, app_port = start_appliance(Path(tmp))
        peer, peer_port = start_peer()
        try:
            for kind in kinds:
                for conns in (1, 4):
                    run = f"r{conns}"
                    a_secs, a_acks = asyncio.run(drive(app_port, workload(kind, args.messages, run), conns))
                    drained = wait_idle(app.pid)
                    p_secs, p_acks = asyncio.run(drive(peer_port, workload(kind, args.messages, run), conns))
                    a_rate, p_rate = a_acks / a_secs, p_acks / p_secs
                    print(f"{kind:<6} {conns:>5} {a_rate:16.0f} {p_rate:17.0f} {a_rate / p_rate:6.2f}")
                    figures[f"{kind}_{conns}conn"] = {"appliance_msg_s": round(a_rate), "peer_msg_s": round(p_rate),
                                                     "ratio": round(a_rate / p_rate, 2), "appliance_acks": a_acks,
                                                     "appliance_backlog_drain_s": round(drained, 1),
                                                     "peer_acks": p_acks}
        finally:
            for p in (app, peer):
                p.terminate()
                p.wait(30)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
