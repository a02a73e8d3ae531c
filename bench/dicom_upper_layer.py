"""Why the DICOM upper layer is the appliance's own: the same protocol abuse, sent to the
appliance's listener and to pynetdicom's (the field's library, from .venv-peers), each in its
own process, and what each does: abort at once, or hold the association until a timeout, and
how far its memory grows when a peer streams a dataset that never ends.

    python bench/dicom_upper_layer.py [--peer-python .venv-peers/bin/python] [--flood-mb 200]

Last line: one JSON object."""
from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from dicom_client import abuse_cases, associate_rq, pdu, read_pdu  # noqa: E402

APPLIANCE_SERVER = r'''
import sys, tempfile, time
from pathlib import Path
from appliance.api.dicom import DicomServer
from appliance.config import DicomConfig
from appliance.services.intake import IntakeService
from appliance.store import open_store
from appliance.store.keys import write_new_key
d = Path(tempfile.mkdtemp()); write_new_key(d / "k")
server = DicomServer(DicomConfig(port=0, idle_timeout_s=120, allowed_peers=("127.0.0.1",)), IntakeService(open_store(d / "a.db", d / "k"), b"s" * 32))
print(server.start(), flush=True)
time.sleep(3600)
'''
PYNETDICOM_SERVER = r'''
import logging, time
from pynetdicom import AE, evt, AllStoragePresentationContexts
from pynetdicom.sop_class import Verification
logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
ae = AE(ae_title="APPLIANCE")
ae.add_supported_context(Verification)
for cx in AllStoragePresentationContexts:
    ae.add_supported_context(cx.abstract_syntax)
ae.network_timeout, ae.acse_timeout, ae.dimse_timeout = 120, 30, 120
srv = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, lambda e: 0x0000)])
print(srv.server_address[1], flush=True)
time.sleep(3600)
'''
CASES = abuse_cases()


def run_server(python: str, code: str) -> tuple[subprocess.Popen, int]:
    p = subprocess.Popen([python, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return p, int(p.stdout.readline())


def abuse(port: int) -> dict[str, str]:
    out = {}
    for name, bad in CASES.items():
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(associate_rq("APPLIANCE"))
            read_pdu(s)
            t = time.monotonic()
            s.sendall(bad)
            try:
                kind, _ = read_pdu(s)
                out[name] = "A-ABORT at once" if kind == 0x07 else f"PDU 0x{kind:02x}"
            except TimeoutError:
                out[name] = f"held open (no answer in {time.monotonic() - t:.0f} s)"
            except (ConnectionError, OSError):
                out[name] = "closed without A-ABORT"
    return out


BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def _uid(v: str) -> bytes:
    b = v.encode()
    return b + b"\0" if len(b) % 2 else b


def store_command() -> bytes:
    """A C-STORE-RQ announcing a dataset (Implicit VR LE command set)."""
    els = [(0x0002, _uid(BASIC_TEXT_SR)), (0x0100, struct.pack("<H", 1)), (0x0110, struct.pack("<H", 1)),
           (0x0700, struct.pack("<H", 0)), (0x0800, struct.pack("<H", 0)), (0x1000, _uid("1.2.3.4.5"))]
    body = b"".join(struct.pack("<HHI", 0, e, len(v)) + v for e, v in sorted(els))
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def flood(port: int, pid: int, megabytes: int) -> float:
    """A C-STORE whose dataset never ends (fragments, never the last): how much does it keep?"""
    proc = psutil.Process(pid)
    before = proc.memory_info().rss
    frag = pdu(0x04, struct.pack(">IBB", 16002, 1, 0) + bytes(16000))
    cmd = store_command()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(associate_rq("APPLIANCE", abstract=BASIC_TEXT_SR))
        read_pdu(s)
        s.sendall(pdu(0x04, struct.pack(">IBB", len(cmd) + 2, 1, 3) + cmd))
        sent = 0
        peak = before
        try:
            for i in range(megabytes * 1_000_000 // len(frag)):
                s.sendall(frag)
                sent += len(frag)
                if i % 500 == 0:
                    peak = max(peak, proc.memory_info().rss)
        except OSError:
            pass  # the listener gave up on it: the point
        time.sleep(1)
        peak = max(peak, proc.memory_info().rss)
    print(f"  (sent {sent / 1e6:.0f} MB before the listener closed or the flood ended)")
    return (peak - before) / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer-python", default=str(ROOT / ".venv-peers" / "bin" / "python"))
    ap.add_argument("--flood-mb", type=int, default=200)
    args = ap.parse_args(argv)
    if subprocess.run([args.peer_python, "-c", "import pynetdicom"], capture_output=True).returncode != 0:
        print(f"pynetdicom is not importable by {args.peer_python}: run `make bench-peers`", file=sys.stderr)
        return 2
    results = {}
    for name, python, code in (("appliance", sys.executable, APPLIANCE_SERVER),
                               ("pynetdicom", args.peer_python, PYNETDICOM_SERVER)):
        proc, port = run_server(python, code)
        try:
            results[name] = {"abuse": abuse(port), "flood_rss_growth_mb": round(flood(port, proc.pid, args.flood_mb), 1)}
        finally:
            proc.kill()
    for name, r in results.items():
        print(f"{name}:")
        for case, what in r["abuse"].items():
            print(f"  {case:24s} {what}")
        print(f"  {args.flood_mb} MB of dataset fragments: resident memory +{r['flood_rss_growth_mb']} MB")
    print(json.dumps({"flood_mb": args.flood_mb, **{f"{k}_{m}": v for k, r in results.items()
                                                     for m, v in (("flood_rss_growth_mb", r["flood_rss_growth_mb"]),
                                                                  ("aborted_at_once", sum("at once" in x for x in
                                                                                          r["abuse"].values())))},
                      "cases": len(CASES)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
