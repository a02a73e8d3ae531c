"""The clinician's desktop client against the real daemon and the real model, offscreen
(QT_QPA_PLATFORM=offscreen, pytest-qt): the worklist, a summary streaming in, a flagged number
highlighted, re-identification for a clinician (audited) and its absence for another role.
Screenshots of each state are written to docs/screenshots/."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

pytest.importorskip("PySide6", reason="PySide6 not installed (pip install '.[client]')")

from PySide6.QtCore import Qt  # noqa: E402

from appliance.client.render import summary_html  # noqa: E402
from appliance.client.session import Session  # noqa: E402
from appliance.client.window import ClientWindow  # noqa: E402
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
    assert window.table.item(0, 5).text() == doc_id
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
    _shot(window, "3-summary")
    _shot(window, "3-summary-1920x1080", (1920, 1080))

    # A flagged number (planted in the summary the window is given) is highlighted with its reason.
    window._on_final(pb.Summary(text="Spiculated nodule, 9.9 cm.", structured_json='{"impression": '
                                '["Spiculated nodule, 9.9 cm."]}', grounding_flags=['number: "9.9 cm" - '
                                                                                    'not in the report']))
    shown = window.summary.toHtml()
    assert "9.9 cm" in shown and "not in the report" in shown and "#ffe08a" in shown.lower()
    _shot(window, "4-flagged-number")

    # Re-identification: the purpose is asked, the identity shown, the access recorded.
    window.reidentify("TREATMENT")
    assert "Whitaker" in window.report.toPlainText()
    assert "recorded" in window.notice.text() and "user:" in window.notice.text()
    _shot(window, "5-reidentified")
    window.close()
    # Nothing with patient text was written to disk by the client.
    for f in (tmp_path / "home").rglob("*"):
        if f.is_file():
            assert b"Whitaker" not in f.read_bytes() and b"nodule" not in f.read_bytes(), f
    audit = [line for line in session.stub.ExportAudit(pb.ExportAuditRequest(), timeout=10)]
    assert any('"reidentify' in a.json or "reidentif" in a.json for a in audit)


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
    assert "<li><b>Acute subdural hematoma.</b></li>" in html and "<li>No fracture.</li>" in html


def test_summary_rendering_marks_stale_and_flags():
    html = summary_html("Left effusion.", ['side: "Left" - the report says right'], '{"impression": ["Left effusion."]}',
                        stale=True)
    assert "Stale" in html and "the report says right" in html and re.search(r"<span[^>]*>Left</span>", html)
