"""The clinician's desktop client against the real daemon and the real model, offscreen
(QT_QPA_PLATFORM=offscreen, pytest-qt): the worklist, a summary streaming in, a flagged number
highlighted, re-identification for a clinician (audited) and its absence for another role.
Screenshots of each state are written to docs/screenshots/."""
from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

pytest.importorskip("PySide6", reason="PySide6 not installed (pip install '.[client]')")

from PySide6.QtCore import Qt  # noqa: E402

from appliance.client.render import summary_html  # noqa: E402
from appliance.client.session import Session  # noqa: E402
from appliance.client.window import COLUMNS, ClientWindow  # noqa: E402
from conftest import SAMPLE, start_daemon, stop_daemon  # noqa: E402

SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def _shot(window, name: str, size: tuple[int, int] = (1366, 768)) -> None:
    window.resize(*size)
    window.repaint()
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(SHOTS / f"{name}.png"))


def _with(config: Path, section: str, line: str) -> None:
    config.write_text(config.read_text().replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1))


@pytest.fixture
def on_request_daemon(state: Path, tmp_path: Path):
    _with(state, "model", "summarize_on_arrival = false")  # the summary is written while the client watches
    run = start_daemon(state, tmp_path / "d.log")
    yield run
    stop_daemon(run)


def _session(run) -> Session:
    from appliance.api.transport import state_path
    from appliance.config import load_config

    cfg = load_config(run.config)
    return Session.unix(state_path(cfg.state_dir, cfg.grpc.unix_socket))


def test_worklist_stream_flags_and_reidentify_as_a_clinician(qtbot, on_request_daemon, tmp_path, monkeypatch):
    from appliance.v1 import appliance_pb2 as pb

    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # whatever Qt writes would land here
    (tmp_path / "home").mkdir()
    doc_id = on_request_daemon.stub().SubmitHL7(pb.SubmitHL7Request(message=SAMPLE.read_bytes()),
                                                timeout=30).results[0].document_id
    session = _session(on_request_daemon)
    assert "clinician" in session.roles and session.may_reidentify
    window = ClientWindow(session, poll_ms=300)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.table.rowCount() == 1, timeout=20_000)
    assert window.table.item(0, 0).data(Qt.ItemDataRole.UserRole) == doc_id
    row = [window.table.item(0, c).text() for c in range(window.table.columnCount())]
    assert "CT CHEST WITH CONTRAST" in row  # the exam as ordered (OBR-4)
    patient = row[COLUMNS.index("Patient (surrogate)")]
    assert patient not in ("", "—") and "Whitaker" not in patient and "Eleanor" not in patient, row
    _shot(window, "1-worklist")

    # Keyboard: the worklist has focus; Enter opens the selected document.
    lengths: list[int] = []
    window.summary.textChanged.connect(lambda: lengths.append(len(window.partial)))
    window.table.setFocus()
    window.table.setCurrentCell(0, 0)
    qtbot.keyClick(window.table, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.current == doc_id, timeout=10_000)
    assert "Whitaker" not in window.report.toPlainText() and "nodule" in window.report.toPlainText().lower()
    qtbot.waitUntil(lambda: len(window.partial) > 0, timeout=120_000)
    _shot(window, "2-summary-streaming")
    qtbot.waitUntil(lambda: "Impression" in window.summary.toHtml() or "No summary" in window.summary.toHtml(),
                    timeout=300_000)
    growing = [n for a, n in zip(lengths, lengths[1:]) if n > a]
    assert len(growing) >= 3, lengths  # the text grew across at least three repaints
    assert "Impression" in window.summary.toHtml()
    # The summary found a critical finding (a suspected new malignancy): the worklist row says so
    # at its next refresh, through the daemon's list (the real summary, not a planted one).
    qtbot.waitUntil(lambda: window.table.item(0, 0).text() == "CRITICAL", timeout=10_000)
    links = re.findall(r'href="(src:[0-9,\-]+)"', window.summary.toHtml())
    if links:  # each line of the summary shows where the report says it
        assert window.show_source(links[0]) and window.report.textCursor().hasSelection()
    _shot(window, "3-summary")
    _shot(window, "3-summary-1920x1080", (1920, 1080))

    # A flagged number (planted in the summary the window is given) is highlighted with its reason.
    window._on_final(pb.Summary(text="Spiculated nodule, 9.9 cm.", structured_json='{"impression": '
                                '["Spiculated nodule, 9.9 cm."]}', grounding_flags=['number: "9.9 cm" - '
                                                                                    'not in the report']))
    shown = window.summary.toHtml()
    assert "9.9 cm" in shown and "not in the report" in shown and "#ffe08a" in shown.lower()
    _shot(window, "4-flagged-number")

    # Re-identification: the purpose is asked (none pre-selected), the identity shown and labelled
    # as such, the access recorded with a reason that keeps no name; hidden again on request (or
    # after REID_SECONDS, or on leaving the document).
    from appliance.client.window import PurposeDialog

    dialog = PurposeDialog(window)
    assert dialog.purpose.currentIndex() == -1 and not dialog.ok.isEnabled()
    dialog.purpose.setCurrentIndex(0)
    assert dialog.ok.isEnabled() and dialog.chosen()[0] == "TREATMENT"
    dialog.close()
    window.reidentify("TREATMENT", "family asked, Mrs Whitaker's daughter Quennell")
    assert "Whitaker" in window.report.toPlainText()
    assert "IDENTIFIED" in window.report_label.text() and window.reid_timer.isActive()
    assert "recorded" in window.notice.text() and "user:" in window.notice.text()
    _shot(window, "5-reidentified")
    window.hide_identity()
    assert "Whitaker" not in window.report.toPlainText() and "IDENTIFIED" not in window.report_label.text()
    window.close()
    # Nothing with patient text was written to disk by the client.
    for f in (tmp_path / "home").rglob("*"):
        if f.is_file():
            assert b"Whitaker" not in f.read_bytes() and b"nodule" not in f.read_bytes(), f
    audit = [line for line in session.stub.ExportAudit(pb.ExportAuditRequest(), timeout=10)]
    reid = [a.json for a in audit if "reidentif" in a.json]
    assert reid and "reason=" in reid[-1] and "family asked" in reid[-1]
    assert "Whitaker" not in reid[-1] and "Quennell" not in reid[-1], reid[-1]


def test_no_identity_button_for_a_role_that_may_not(qtbot, state, tmp_path):
    import grpc

    from appliance.v1 import appliance_pb2 as pb

    _with(state, "access", 'owner_roles = ["integration"]')
    run = start_daemon(state, tmp_path / "d.log")
    try:
        doc_id = _session(run).stub.SubmitHL7(pb.SubmitHL7Request(message=SAMPLE.read_bytes()),
                                              timeout=30).results[0].document_id
        session = _session(run)
        assert session.roles == {"integration"} and not session.may_reidentify
        window = ClientWindow(session, poll_ms=300)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(lambda: window.table.rowCount() == 1, timeout=20_000)
        assert not window.reid_btn.isVisible()
        _shot(window, "6-integration-role-no-identity-button")
        with pytest.raises(grpc.RpcError) as e:
            session.reidentify(doc_id, "TREATMENT")
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED and "clinician" in e.value.details()
        window.close()
    finally:
        stop_daemon(run)


def test_a_critical_summary_is_marked_in_the_window():
    structured = {"impression": ["Acute subdural hematoma.", "No fracture."], "is_critical": True,
                  "critical": [{"class": "hemorrhage", "label": "intracranial hemorrhage"}],
                  "lines": [{"text": "Acute subdural hematoma.", "critical": ["hemorrhage"]},
                            {"text": "No fracture.", "critical": []}]}
    html = summary_html("CRITICAL: intracranial hemorrhage\nIMPRESSION:\n- Acute subdural hematoma.\n- No fracture.",
                        [], json.dumps(structured))
    assert html.index("CRITICAL:</b> intracranial hemorrhage") < html.index("Acute subdural hematoma")
    assert "<li><b style='color:#b00020'>Acute subdural hematoma.</b></li>" in html and "<li>No fracture.</li>" in html


def test_summary_rendering_marks_stale_and_flags():
    html = summary_html("Left effusion.", ['side: "Left" - the report says right'], '{"impression": ["Left effusion."]}',
                        stale=True)
    assert "Stale" in html and "the report says right" in html and re.search(r"<span[^>]*>Left</span>", html)


def test_void_calls_keep_none_alive():
    """PySide6 6.12 on Python 3.11 dropped a reference to None on every call that returns
    nothing (insertRow, setData, selectRow...): the client aborted with "none_dealloc" after
    minutes, seconds with 200 documents. 6.11.3 is pinned for that; this guards the pin."""
    import sys

    from PySide6.QtWidgets import QApplication, QTableWidget

    _app = QApplication.instance() or QApplication([])
    table = QTableWidget(0, 3)
    before = sys.getrefcount(None)
    for _ in range(2000):
        table.insertRow(0)
        table.selectRow(0)
    assert sys.getrefcount(None) - before > -100


def _submit(stub, message: bytes) -> str:
    from appliance.v1 import appliance_pb2 as pb

    return stub.SubmitHL7(pb.SubmitHL7Request(message=message), timeout=30).results[0].document_id


def _window(qtbot, run, rows: int) -> ClientWindow:
    """The client on `run`'s socket, refreshing every 0.3 s, once its worklist shows `rows`."""
    window = ClientWindow(_session(run), poll_ms=300)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.table.rowCount() == rows, timeout=20_000)
    return window


def _oru(control: str, order: str, status: str, text: str) -> bytes:
    return (f"MSH|^~\\&|RIS|GH|APPLIANCE|GH|20261120143000||ORU^R01^ORU_R01|{control}|P|2.5.1\r"
            "PID|1||7700^^^GH^MR||Pellegrino^Ottavia||19600101|F\r"
            f"OBR|1|{order}|ACC-{order}|71020^CHEST XRAY^CPT|||||||||||||||||||||{status}\r"
            f"OBX|1|TX|18782-3^Study^LN||{text}||||||{status}\r").encode()


def test_a_failed_load_clears_both_panes_and_a_restart_is_recovered_by_itself(qtbot, on_request_daemon, state,
                                                                               tmp_path):
    """Never another patient's text on screen: a document that cannot be opened (the daemon is
    gone) clears the report and the summary and says so. The worklist greys out with a banner,
    and comes back by itself, with a fresh ticket, once the daemon is up again."""
    stub = on_request_daemon.stub()
    first = _submit(stub, _oru("C-1", "O1", "F", "FINDINGS: Small left effusion."))
    second = _submit(stub, _oru("C-2", "O2", "F", "FINDINGS: Right rib fracture."))
    window = _window(qtbot, on_request_daemon, 2)
    window.open_document(first)
    assert "effusion" in window.report.toPlainText()
    window._stop_stream()
    stop_daemon(on_request_daemon)
    window.open_document(second)
    for pane in (window.report, window.summary):
        assert "effusion" not in pane.toPlainText() and "Not loaded" in pane.toPlainText()
    assert window.current is None
    qtbot.waitUntil(lambda: window.banner.isVisible() and not window.table.isEnabled(), timeout=5_000)
    _shot(window, "7-appliance-unavailable")
    restarted = start_daemon(state, tmp_path / "d2.log")
    try:
        qtbot.waitUntil(lambda: window.table.isEnabled() and not window.banner.isVisible(), timeout=10_000)
        window.open_document(second)
        assert "fracture" in window.report.toPlainText()
        window._stop_stream()
    finally:
        stop_daemon(restarted)


def test_an_open_document_turns_stale_when_its_final_arrives(qtbot, on_request_daemon):
    stub = on_request_daemon.stub()
    prelim = _submit(stub, _oru("P-1", "O7", "P", "FINDINGS: Possible left effusion."))
    window = _window(qtbot, on_request_daemon, 1)
    window.open_document(prelim)
    assert not window.stale_banner.isVisible()
    _submit(stub, _oru("P-2", "O7", "F", "FINDINGS: Small left effusion."))
    qtbot.waitUntil(lambda: window.stale_banner.isVisible(), timeout=2_000)
    assert "replaced" in window.stale_banner.text()
    _shot(window, "8-stale-document")
    window._stop_stream()


def test_the_worklist_puts_critical_findings_first_then_urgency_then_the_newest():
    from appliance.client.session import Row

    rows = [Row("a" * 32, "hl7:ORU^R01", "RIS", 1_000, "SUMMARIZED", "final", "CT HEAD", "CT", "routine", "X, Y"),
            Row("b" * 32, "hl7:ORU^R01", "RIS", 3_000, "SUMMARIZED", "final", "CXR", "CR", "", "X, Y"),
            Row("c" * 32, "hl7:ORU^R01", "RIS", 2_000, "SUMMARIZED", "final", "CT ABD", "CT", "stat", "X, Y"),
            Row("d" * 32, "hl7:ORU^R01", "RIS", 500, "SUMMARIZED", "final", "CT HEAD", "CT", "routine", "X, Y",
                critical=True)]
    order = [r.id[0] for r in ClientWindow.ordered(rows)]
    assert order == ["d", "c", "b", "a"]  # critical, then stat, then the newest (routine is no urgency)
    assert ClientWindow.cells(rows[3])[0] == "CRITICAL"


def test_summary_lines_link_to_their_source_critical_first_and_what_grounding_left_out():
    from appliance.client.render import parse_source

    structured = json.dumps({
        "is_critical": True, "critical": [{"label": "pneumothorax"}],
        "impression": ["Small left effusion.", "Large right pneumothorax."],
        "lines": [{"text": "Small left effusion.", "spans": [[10, 30]], "critical": []},
                  {"text": "Large right pneumothorax.", "spans": [[40, 66]], "critical": ["pneumothorax"]}],
        "removed": {"number": 1}})
    shown = summary_html("Small left effusion.\nLarge right pneumothorax.", [], structured)
    assert shown.index("pneumothorax.") < shown.index("Small left effusion")  # the critical line leads
    assert "href='src:40-66'" in shown and "href='src:10-30'" in shown
    assert "Left out by the check against the report" in shown and "number: 1" in shown
    assert parse_source("src:40-66,70-80") == [(40, 66), (70, 80)] and parse_source("http://x") == []


def test_clicking_a_summary_line_marks_its_source_and_cancel_says_so(qtbot):
    from appliance.client.render import cancelled_html

    from appliance.client.session import Row

    now = int(time.time() * 1000)

    class Offline:
        actor, roles, local, may_reidentify = "user:test", {"clinician"}, True, False

        def worklist(self):
            return [Row("1" * 32, "hl7:ORU^R01", "RIS", now - 60_000, "SUMMARIZED", "final", "CT HEAD WO CONTRAST",
                        "CT", "stat", "HOLLIS, MARGUERITE", critical=True),
                    Row("2" * 32, "hl7:ORU^R01", "RIS", now - 30_000, "RECEIVED", "preliminary", "XR CHEST 2 VIEWS",
                        "CR", "routine", "DELACROIX, TOBIN"),
                    Row("3" * 32, "dicom:Basic Text SR", "PACS1", now, "SUMMARIZING", "final", "MRI LUMBAR SPINE",
                        "", "", "ABERNATHY, SOLVEIG")]

        def lost(self, e):
            pass

    window = ClientWindow(Offline(), poll_ms=60_000)
    qtbot.addWidget(window)
    window.show()
    assert window.table.item(0, 0).text() == "CRITICAL"  # critical first, though not the newest
    _shot(window, "9-worklist-critical-first")
    window.report.setPlainText("FINDINGS: Small left effusion. Large right pneumothorax with shift.")
    spans = window.show_source("src:10-30")
    assert spans == [(10, 30)] and window.report.textCursor().selectedText() == "Small left effusion."
    assert window.show_source("src:10-999") == []  # a span past the text is ignored, never a crash
    window.summary.setHtml(cancelled_html())
    assert "cancelled" in window.summary.toPlainText().lower() and "Writing" not in window.summary.toPlainText()
    _shot(window, "10-summary-cancelled")


def test_the_real_client_outlives_a_daemon_restart_over_many_documents():
    """The installed program, not a widget: 60 documents, a 1 s refresh, the daemon restarted half
    way; the client is alive at the end (exit code 0) and said it reconnected by itself.
    (bench/client_soak.py runs it 10 minutes over 200 documents and reports memory and timing.)"""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from client_soak import run

    figures = run(minutes=1.0, documents=60)
    assert figures["client_exit_code"] == 0, figures
    assert figures["recovery_s_after_restart"] is not None, figures
    assert not any("Traceback" in line or "Fatal" in line for line in figures["client_stderr"]), figures
