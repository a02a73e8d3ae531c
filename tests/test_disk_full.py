"""A full disk, for real: the state directory on a small tmpfs, filled until writes fail. Every
message is answered (AE with the reason, never a closed connection), nothing is acknowledged that
was not committed, and intake recovers on its own when space returns."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest

from appliance.v1 import appliance_pb2 as pb

from conftest import free_port, start_daemon, stop_daemon
from dicom_sr import make_sr
from mllp_client import MllpClient



def oru(i: int) -> bytes:
    return (f"MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261207101500||ORU^R01^ORU_R01|DF-{i}|P|2.5.1\r"
            f"PID|1||{9100 + i}^^^GH^MR||Quennell^Aurelie||19610203|F\rOBR|1|O{i}|A{i}|71020^CHEST XRAY^CPT\r"
            f"OBX|1|TX|18782-3^Study^LN||FINDINGS: Small left effusion {i} mm. " + "Lungs otherwise clear. " * 40
            + "||||||F\r").encode()


def msa(ack: bytes | None) -> str:
    if not ack:
        return "closed"
    seg = next((s for s in ack.decode(errors="replace").split("\r") if s.startswith("MSA")), "")
    return seg.split("|")[1] if seg else "none"


@pytest.fixture
def small_fs(tmp_path: Path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}): the disk-full test needs root")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_a_full_disk_gets_an_answer_for_every_message_and_intake_recovers(small_fs, tmp_path):
    from appliance.cli.init import init_state, test_model_path
    from appliance.config import load_config

    config = init_state(small_fs / "state", grpc_port=free_port(), mllp_port=free_port(), dicom_port=free_port(),
                        metrics_port=free_port(), model=test_model_path())
    run = start_daemon(config, tmp_path / "daemon.log")
    try:
        port = load_config(config).mllp.port
        c = MllpClient(port)
        assert msa(c.request(oru(0))) == "AA"
        filler = small_fs / "filler"
        fill(filler)
        answers = []
        for i in range(1, 31):
            try:
                answers.append(msa(c.request(oru(i))))
            except (ConnectionError, OSError):
                answers.append("closed")
                c = MllpClient(port)
        assert "closed" not in answers and "none" not in answers, answers
        assert set(answers) <= {"AA", "AE"} and "AE" in answers, answers
        ae = c.request(oru(31))
        assert msa(ae) == "AE" and b"disk is full" in ae, ae
        # DICOM: 0xA700 (Out of Resources), which a PACS retries; gRPC: UNAVAILABLE with the reason
        sr = tmp_path / "full.dcm"
        sr.write_bytes(make_sr(sop_instance_uid="1.2.826.0.1.3680043.8.498.990001"))
        r = subprocess.run([shutil.which("storescu") or "storescu", "-v", "-aec", "APPLIANCE", "-aet", "PACS1",
                            "127.0.0.1", str(load_config(config).dicom.port), str(sr)],
                           capture_output=True, text=True, timeout=60)
        assert "Refused: OutOfResources" in r.stdout + r.stderr, r.stdout + r.stderr
        with pytest.raises(grpc.RpcError) as e:
            run.stub().SubmitHL7(pb.SubmitHL7Request(message=oru(32)), timeout=30)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "disk is full" in e.value.details()
        acked = [i for i, a in zip(range(1, 31), answers) if a == "AA"]
        os.unlink(filler)
        after = [msa(c.request(oru(100 + i))) for i in range(5)]
        assert after == ["AA"] * 5, after
        # what was refused with AE comes again and is taken now; nothing acknowledged was lost
        again = [msa(c.request(oru(i))) for i in range(1, 33)]
        assert set(again) == {"AA"}, again
        r = subprocess.run([shutil.which("storescu") or "storescu", "-v", "-aec", "APPLIANCE", "-aet", "PACS1",
                            "127.0.0.1", str(load_config(config).dicom.port), str(sr)],
                           capture_output=True, text=True, timeout=60)
        assert "Received Store Response (Success)" in r.stdout + r.stderr, r.stdout + r.stderr
        c.close()
        log = run.output()
        assert "Traceback" not in log and "uncaught" not in log and "quennell" not in log.lower()
        assert acked is not None
    finally:
        assert stop_daemon(run) == 0
        assert "uncaught" not in run.output()
