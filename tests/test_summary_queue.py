"""The summary queue a ward can rely on: bounded requests, an attempts cap, retries, requests for
documents still being de-identified, cancellation, restart mid-queue, stale summaries. Real
SQLCipher; the worker runs the real default model."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from appliance.cli.init import test_model_path as smallest_model
from appliance.config import ModelConfig
from appliance.errors import QueueFull
from appliance.llm.integrity import sha256_file
from appliance.llm.worker import FailedEvent, FinalEvent, SummaryHub, SummaryWorker, TokenEvent
from appliance.services.intake import IntakeService

SECRET = b"k" * 32


def oru(n: int, text: str = "FINDINGS: Small left pleural effusion. No pneumothorax.") -> bytes:
    return (f"MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261120143000||ORU^R01^ORU_R01|Q-{n}|P|2.5.1\r"
            f"PID|1||{7000 + n}^^^GH^MR||Doe^Pat||19600101|F\r"
            f"OBR|1|ORD{n}|ACC{n}|71020^CHEST XRAY^CPT\r"
            f"OBX|1|TX|18782-3^Study^LN||{text}||||||F\r").encode()


def submit(store, n: int, **kw) -> str:
    return IntakeService(store, SECRET).submit(oru(n, **kw), transport="t")[0].document_id


def test_a_full_request_queue_answers_queue_full_with_the_depth(store):
    ids = [submit(store, i) for i in range(3)]
    store.request_summary(ids[0], max_requested=2)
    store.request_summary(ids[1], max_requested=2)
    store.request_summary(ids[1], max_requested=2)  # asking twice for the same one costs nothing
    with pytest.raises(QueueFull, match="2 summary requests are waiting"):
        store.request_summary(ids[2], max_requested=2)
    assert QueueFull.status == "RESOURCE_EXHAUSTED"


def test_a_report_that_fails_twice_is_failed_then_retried_on_request(store):
    doc = submit(store, 1)
    for _ in range(2):  # claimed and never finished: the daemon died mid-generation, twice
        assert store.claim_next_job(max_attempts=2) == doc
        store.requeue_interrupted()
    assert store.claim_next_job(max_attempts=2) is None
    assert store.get_document(doc).status == "FAILED"
    store.request_summary(doc)  # a clinician asks again: one more chance
    assert store.get_document(doc).status == "RECEIVED"
    assert store.claim_next_job(max_attempts=2) == doc


def test_a_request_for_a_document_still_being_deidentified_is_kept(store):
    intake = IntakeService(store, SECRET)
    prepared = intake.prepare_all(oru(5), transport="t", deid_now=False)[0]
    doc = intake.commit_async(prepared).result().document_id
    assert store.get_document(doc).status == "PARSED"
    store.request_summary(doc)
    assert store.claim_next_job() is None  # nothing to summarise before de-identification
    from appliance.services.deid_stage import DeidStage
    DeidStage(store, SECRET, on_ready=lambda _id: None).drain()
    other = submit(store, 6)  # arrived later, not requested
    assert store.claim_next_job() == doc and other


def test_a_cancelled_request_leaves_the_front_of_the_queue(store):
    a, b = submit(store, 1), submit(store, 2)
    store.request_summary(b)
    assert store.cancel_job(b, "test")
    assert store.claim_next_job(requested_only=True) is None
    assert store.claim_next_job() == a


MODEL = smallest_model()
needs_model = pytest.mark.skipif(MODEL is None, reason="the default model package is not installed")


def _worker(store, hub, **cfg):
    from appliance.llm.engine import open_engine

    mc = ModelConfig(path=Path(MODEL), n_threads=2, n_gpu_layers=0, max_tokens=160, **cfg)
    return SummaryWorker(store, open_engine(mc, sha256_file(MODEL)), mc, hub)


@needs_model
def test_restart_mid_queue_reruns_the_job_and_stores_a_structured_summary(store):
    doc = submit(store, 1)
    assert store.claim_next_job() == doc  # a worker took it, then the daemon was killed
    hub = SummaryHub()
    q = hub.subscribe(doc)
    w = _worker(store, hub)
    w.start()  # start() puts interrupted jobs back
    try:
        ev = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not isinstance(ev, FinalEvent):
            ev = q.get(timeout=120)
        assert isinstance(ev, FinalEvent)
        s = store.get_summary(doc)
        assert s is not None and "effusion" in s.text.lower() and '"impression"' in s.structured
    finally:
        w.stop()


@needs_model
def test_cancel_and_supersede_stop_generation(store):
    long = "FINDINGS: " + " ".join(f"Small left pleural effusion number {i}." for i in range(40))
    doc = submit(store, 1, text=long)
    hub = SummaryHub()
    q = hub.subscribe(doc)
    w = _worker(store, hub)
    w.start()
    try:
        # No line reaches a follower before it has passed grounding, so the generation in
        # flight is seen through the worker, not through the stream.
        deadline = time.monotonic() + 120
        while w.current != doc and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.cancel(doc)
        ev = q.get(timeout=60)
        assert not isinstance(ev, TokenEvent)  # a cancelled summary shows no line at all
        assert isinstance(ev, FailedEvent) and ev.reason == "cancelled"
        assert store.get_summary(doc) is None and w.cancelled == 1
    finally:
        w.stop()


def test_a_full_queue_answers_resource_exhausted_over_grpc(state, tmp_path):
    import grpc

    from appliance.v1 import appliance_pb2 as pb
    from conftest import start_daemon, stop_daemon

    text = state.read_text().replace("max_requested = 32", "max_requested = 0")
    state.write_text(text.replace("n_threads = 1", "n_threads = 1\nsummarize_on_arrival = false"))
    run = start_daemon(state, tmp_path / "d.log")
    try:
        stub = run.stub()
        doc = stub.SubmitHL7(pb.SubmitHL7Request(message=oru(1)), timeout=30).results[0].document_id
        with pytest.raises(grpc.RpcError) as e:
            list(stub.StreamSummary(pb.StreamSummaryRequest(document_id=doc), timeout=30))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "0 summary requests are waiting (model.max_requested = 0)" in e.value.details()
        assert stub.CancelSummary(pb.CancelSummaryRequest(document_id=doc), timeout=10).cancelled is False
    finally:
        stop_daemon(run)


def test_a_follower_is_told_its_place_in_the_queue(store):
    """The queue's order as the worker takes it: requested first, then the oldest; a document
    being written is 0 ahead; a document without a job has no place."""
    from appliance.domain import KnownIdentifiers
    from appliance.store.db import NewDocument

    ids = []
    for i in range(3):
        with store.transaction() as cur:
            ids.append(store.insert_document(cur, NewDocument(
                kind="hl7:ORU^R01", source="t", transport="grpc", patient_ref=f"p{i}", deid_text="Lungs clear.",
                phi_spans=0, document_ref=f"R{i}", surrogates={}, raw=b"x", message_key=f"k{i}",
                known=KnownIdentifiers(patient_key=f"p{i}")), "test", None))
    assert [store.queue_position(d) for d in ids] == [0, 1, 2]
    store.request_summary(ids[2], 32)  # a clinician asks for the newest: it jumps the queue
    assert store.queue_position(ids[2]) == 0 and store.queue_position(ids[0]) == 1
    running = store.claim_next_job()
    assert running == ids[2] and store.queue_position(ids[2]) == 0 and store.queue_position(ids[0]) == 1
    assert store.queue_position("0" * 32) is None


def test_a_correction_jumps_the_summary_queue(store):
    """A result that replaces an earlier one (final after preliminary, a correction) is summarised
    before routine arrivals: whoever read the old summary needs the new one first."""
    from appliance.services.intake import IntakeService

    intake = IntakeService(store, b"q" * 32)

    def oru(cid: str, order: str, status: str) -> bytes:
        return (f"MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261207101500||ORU^R01^ORU_R01|{cid}|P|2.5.1\r"
                f"PID|1||{order}^^^GH^MR||Quennell^Aurelie||19610203|F\rOBR|1|P{order}|F{order}|71020^CXR^CPT"
                f"||||||||||||||||||{status}\rOBX|1|TX|18782-3^Study^LN||FINDINGS: Small left effusion.||||||{status}\r"
                ).encode()

    first = intake.submit(oru("Q-1", "900", "P"), transport="grpc")[0].document_id
    for i in range(5):
        intake.submit(oru(f"Q-R{i}", f"91{i}", "F"), transport="grpc")
    final = intake.submit(oru("Q-2", "900", "F"), transport="grpc")[0].document_id
    assert store.get_document(first).superseded_by == final
    assert store.queue_position(final) == 0  # ahead of the five routine arrivals before it
