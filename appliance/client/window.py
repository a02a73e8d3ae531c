"""The clinician's window: a worklist (newest first, live), the de-identified report beside its
summary (streaming in line by line, each line once grounded), summary request and cancel, and re-identification for
those whose role allows it. Nothing is written to disk: no settings, caches or logs with text."""
from __future__ import annotations

import contextlib
import html
import json
import sys
import threading
from typing import Any
from datetime import datetime

import grpc
from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QKeySequence, QShortcut, QTextCursor
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QMainWindow, QMessageBox, QPushButton, QSplitter,
                               QTableWidget, QTableWidgetItem, QTextBrowser, QTextEdit, QVBoxLayout, QWidget)

from .render import cancelled_html, parse_source, streaming_html, summary_html
from .session import Row, Session

# A worklist a radiologist or a ward doctor reads: critical findings first (red), then the most
# urgent orders, newest first within each; every column filters.
_DEID_LABEL = "<b>Report</b> (de-identified)"
COLUMNS = ("!", "Received", "Priority", "Exam", "Modality", "Patient (surrogate)", "Result", "Summary", "Source",
           "Document")
_URGENCY = {"stat": 0, "timing critical": 1, "asap": 2, "callback": 3, "pre-op": 4}
# The purposes in a clinician's words; none is chosen for them (the choice is recorded).
PURPOSES = {"TREATMENT": "Treating this patient", "QUALITY_REVIEW": "Quality review or audit",
            "PATIENT_REQUEST": "The patient's own request for their record"}
REID_SECONDS = 120  # identity shown this long, then hidden again (and on leaving the document)
STATUS_WORDS = {"PARSED": "de-identifying", "RECEIVED": "waiting", "SUMMARIZING": "summarising",
                "SUMMARIZED": "summarised", "FAILED": "failed", "SUPERSEDED": "superseded",
                "DEID_FAILED": "set aside", "CANCELLED": "cancelled"}


def _why(e: grpc.RpcError) -> str:
    """What a clinician needs to read of a failed call (not the transport's own words)."""
    if e.code() == grpc.StatusCode.UNAVAILABLE:
        return "the appliance is not answering (stopped or restarting)"
    if e.code() == grpc.StatusCode.UNAUTHENTICATED:
        return "the appliance did not recognise this session; reconnecting"
    if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "the appliance did not answer in time"
    return str(e.details() or e.code().name)


def _critical_only(structured_json: str) -> str:
    try:
        structured = json.loads(structured_json) if structured_json else {}
    except ValueError:
        return ""
    if not isinstance(structured, dict):
        return ""
    return json.dumps({k: structured[k] for k in ("is_critical", "critical") if k in structured})


class PurposeDialog(QDialog):
    """Why the identity is needed: a purpose the clinician must choose (none is pre-selected) and,
    if they wish, a reason in their own words; both are recorded."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Show the patient's identity")
        self.purpose = QComboBox()
        self.purpose.setPlaceholderText("Choose a purpose…")
        for code, words in PURPOSES.items():
            self.purpose.addItem(words, code)
        self.purpose.setCurrentIndex(-1)
        self.reason = QLineEdit(placeholderText="Reason (optional; recorded without names)")
        self.reason.setMaxLength(200)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Show identity (recorded)")
        self.ok.setEnabled(False)
        self.purpose.currentIndexChanged.connect(lambda i: self.ok.setEnabled(i >= 0))
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow(QLabel("This access is recorded in the audit log under your name."))
        form.addRow("Purpose", self.purpose)
        form.addRow("Reason", self.reason)
        form.addRow(buttons)

    def chosen(self) -> tuple[str, str]:
        return str(self.purpose.currentData() or ""), self.reason.text().strip()


class Streamer(QObject):
    """Follows one document's summary on a worker thread and hands each piece to the UI thread."""

    token = Signal(str)
    final = Signal(object)
    failed = Signal(str)
    queued = Signal(int, float)

    def __init__(self, session: Session, doc_id: str) -> None:
        super().__init__()
        self.session, self.doc_id = session, doc_id
        self.cancel = threading.Event()

    def run(self) -> None:
        try:
            for event in self.session.stream_summary(self.doc_id, self.cancel):
                if event.HasField("token"):
                    self.token.emit(event.token)
                elif event.HasField("final"):
                    self.final.emit(event.final)
                elif event.HasField("queued"):
                    self.queued.emit(event.queued.ahead, event.queued.estimate_s)
        except grpc.RpcError as e:
            self.failed.emit(e.details() or e.code().name)


class ClientWindow(QMainWindow):
    def __init__(self, session: Session, poll_ms: int = 2000) -> None:
        super().__init__()
        self.session = session
        self.setWindowTitle(f"Appliance: reports and summaries ({session.actor})")
        self.rows: list[Row] = []
        self.current: str | None = None
        self.partial = ""
        self._thread: QThread | None = None
        self._streamer: Streamer | None = None
        self.summary_repaints = 0
        self.last_summary = None  # the summary shown, to show it again with its highlights
        self.reid_timer = QTimer(self)
        self.reid_timer.setSingleShot(True)
        self.reid_timer.timeout.connect(self.hide_identity)
        self.identified = False
        self.unavailable = False
        self.current_stale = False
        self.timer_ms = poll_ms
        self.banner = QLabel("")  # the appliance is unavailable
        self.banner.setStyleSheet("background:#f6d6d6;padding:4px")
        self.banner.setWordWrap(True)
        self.banner.setVisible(False)
        self.stale_banner = QLabel("")  # the open document was replaced
        self.stale_banner.setStyleSheet("background:#f6d6d6;padding:4px")
        self.stale_banner.setWordWrap(True)
        self.stale_banner.setVisible(False)
        self.stale_banner.linkActivated.connect(lambda link: self.open_document(link.split(":", 1)[1]))

        self.filter = QLineEdit(placeholderText="Filter: exam, modality, patient, priority, status, source, "
                                                "date (YYYY-MM-DD) or \"critical\"")
        self.filter.textChanged.connect(self._fill)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemActivated.connect(lambda _item: self.open_selected())  # Enter or double click
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.addWidget(QLabel("<b>Worklist</b> (critical first, then stat, then newest; ↑/↓ to move, Enter to open, "
                            "Ctrl+F to filter)"))
        lv.addWidget(self.banner)
        lv.addWidget(self.filter)
        lv.addWidget(self.table)

        self.title = QLabel("Open a document from the worklist.")
        self.title.setWordWrap(True)
        self.report = QTextBrowser()
        self.summary = QTextBrowser()
        for view in (self.report, self.summary):
            view.setFont(QFont("DejaVu Sans", 11))
        self.summary.setOpenLinks(False)  # a line's link shows its source in the report, not a page
        self.summary.anchorClicked.connect(lambda url: self.show_source(url.toString()))
        self.request_btn = QPushButton("Request summary")
        self.request_btn.clicked.connect(self.request_summary)
        self.cancel_btn = QPushButton("Cancel summary")
        self.cancel_btn.clicked.connect(self.cancel_summary)
        self.reid_btn = QPushButton("Show identity…")
        self.reid_btn.clicked.connect(self.reidentify)
        self.reid_btn.setVisible(session.may_reidentify)  # absent for roles that may not
        self.notice = QLabel("")
        self.notice.setWordWrap(True)
        buttons = QHBoxLayout()
        for b in (self.request_btn, self.cancel_btn, self.reid_btn):
            buttons.addWidget(b)
        buttons.addStretch(1)
        panes = QSplitter(Qt.Orientation.Horizontal)
        rep = QWidget()
        rv = QVBoxLayout(rep)
        self.report_label = QLabel(_DEID_LABEL)
        rv.addWidget(self.report_label)
        rv.addWidget(self.report)
        summ = QWidget()
        sv = QVBoxLayout(summ)
        sv.addWidget(QLabel("<b>Summary</b> (impression first; highlighted: not supported by the report)"))
        sv.addWidget(self.summary)
        panes.addWidget(rep)
        panes.addWidget(summ)
        right = QWidget()
        rlay = QVBoxLayout(right)
        rlay.addWidget(self.title)
        rlay.addWidget(self.stale_banner)
        rlay.addLayout(buttons)
        rlay.addWidget(panes, 1)
        rlay.addWidget(self.notice)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 2)
        split.setSizes([600, 960])  # the worklist scrolls sideways; the report and summary need the room
        self.setCentralWidget(split)
        QShortcut(QKeySequence("Ctrl+F"), self).activated.connect(self.filter.setFocus)
        QShortcut(QKeySequence("Ctrl+R"), self).activated.connect(self.request_summary)
        self.refresh()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(poll_ms)
        self.table.setFocus()

    # -- worklist ---------------------------------------------------------------------------
    def refresh(self) -> None:
        try:
            rows = self.session.worklist()
        except grpc.RpcError as e:
            # The daemon is restarting or down: say so, grey the list, keep trying on the timer
            # (the session connects again, with a fresh ticket, on the next call).
            self.session.lost(e)
            if not self.unavailable:
                print("appliance-client: appliance unavailable; retrying", file=sys.stderr, flush=True)
            self.unavailable = True
            self.banner.setText(f"<b>Appliance unavailable</b>: {html.escape(_why(e))}. Retrying every "
                                f"{max(1, round(self.timer_ms / 1000))} s; nothing to do here.")
            self.banner.setVisible(True)
            self.table.setEnabled(False)
            return
        if self.unavailable or not self.windowTitle().endswith(f"({self.session.actor})"):
            if self.unavailable:
                print("appliance-client: connection restored", file=sys.stderr, flush=True)
            self.unavailable = False
            self.banner.setVisible(False)
            self.table.setEnabled(True)
            self.reid_btn.setVisible(self.session.may_reidentify)
            self.setWindowTitle(f"Appliance: reports and summaries ({self.session.actor})")
        changed = rows != self.rows
        self.rows = rows
        if changed:
            self._fill()
        self._check_current()

    def _check_current(self) -> None:
        """The open document turns stale as soon as the worklist shows it replaced."""
        row = next((r for r in self.rows if r.id == self.current), None)
        if row is not None and row.status == "SUPERSEDED" and not self.current_stale:
            try:
                doc = self._title(row.id)
                newer = doc.superseded_by
            except grpc.RpcError:
                newer = ""
            self._show_stale(newer)

    @staticmethod
    def ordered(rows: list[Row]) -> list[Row]:
        """Critical findings first, then by the order's urgency, newest first within each."""
        return sorted(rows, key=lambda r: (not r.critical, _URGENCY.get(r.priority, 9), -r.received_ms))

    @staticmethod
    def cells(r: Row) -> tuple[str, ...]:
        received = datetime.fromtimestamp(r.received_ms / 1000).strftime("%Y-%m-%d %H:%M")
        status = STATUS_WORDS.get(r.status, r.status.lower())
        exam = r.exam or r.kind.split(":", 1)[-1]
        return ("CRITICAL" if r.critical else "", received, r.priority or "—", exam, r.modality or "—",
                r.patient or "—", r.result_status or "—", status, r.source or "—", r.id[:12])

    def _fill(self) -> None:
        wanted = self.filter.text().strip().lower()
        selected = self.current
        self.table.setRowCount(0)
        for r in self.ordered(self.rows):
            cells = self.cells(r)
            if wanted and not any(wanted in c.lower() for c in cells):
                continue
            n = self.table.rowCount()
            self.table.insertRow(n)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, r.id)
                if r.critical:
                    item.setBackground(QColor("#f4b6b6"))
                    if col == 0:
                        item.setForeground(QColor("#8b0000"))
                        bold = item.font()
                        bold.setBold(True)
                        item.setFont(bold)
                self.table.setItem(n, col, item)
            if r.id == selected:
                self.table.selectRow(n)
        if self.table.currentRow() < 0 and self.table.rowCount():
            self.table.selectRow(0)

    def open_selected(self) -> None:
        item = self.table.item(self.table.currentRow(), 0)
        if item is not None:
            self.open_document(item.data(Qt.ItemDataRole.UserRole))

    # -- one document -----------------------------------------------------------------------
    def open_document(self, doc_id: str) -> None:
        self._stop_stream()
        self._forget_identity()
        # Another patient's text never stays on screen: both panes are cleared before anything
        # is asked, and a failure says so in both.
        self.current = None
        self.current_stale = False
        self.last_summary = None
        self.stale_banner.setVisible(False)
        self.report.clear()
        self.summary.clear()
        self.notice.setText("")
        try:
            doc = self._title(doc_id)
        except grpc.RpcError as e:
            self.session.lost(e)
            why = html.escape(_why(e))
            self.title.setText(f"<b>Could not open the document</b>: {why}.")
            for pane in (self.report, self.summary):
                pane.setHtml(f"<p><b>Not loaded:</b> {why}. Nothing is shown until it loads.</p>")
            return
        self.current = doc_id
        self.report.setPlainText(doc.deidentified_text or "(de-identification in progress)")
        self.summary.setHtml("<p><i>Waiting for the summary…</i></p>")
        if doc.superseded_by:
            self._show_stale(doc.superseded_by)
        self._follow(doc_id)

    def _show_stale(self, newer: str) -> None:
        """The open document has been replaced: say so above it, with a link to the newer one."""
        self.current_stale = True
        self.stale_banner.setText("<b>Stale:</b> this report has been replaced (corrected or final result)"
                                  + (f" by <a href='doc:{html.escape(newer)}'>the newer document</a>." if newer
                                     else "."))
        self.stale_banner.setVisible(True)

    def _title(self, doc_id: str) -> Any:
        doc = self.session.document(doc_id)
        status = STATUS_WORDS.get(self._status_name(doc.status), "")
        result = f", {doc.result_status} result" if doc.result_status else ""
        self.title.setText(f"<b>{html.escape(doc.kind)}</b> from {html.escape(doc.source)} — {status}{result}"
                           + (f" — replaced by {doc.superseded_by}" if doc.superseded_by else ""))
        return doc

    @staticmethod
    def _status_name(value: int) -> str:
        from ..v1 import appliance_pb2 as pb

        return str(pb.DocumentStatus.Name(value))

    def _follow(self, doc_id: str) -> None:
        self.partial = ""
        streamer = Streamer(self.session, doc_id)
        thread = QThread(self)
        streamer.moveToThread(thread)
        thread.started.connect(streamer.run)
        streamer.token.connect(self._on_token)
        streamer.queued.connect(self._on_queued)
        streamer.final.connect(self._on_final)
        streamer.failed.connect(self._on_failed)
        streamer.final.connect(thread.quit)
        streamer.failed.connect(thread.quit)
        self._thread, self._streamer = thread, streamer
        thread.start()

    def _stop_stream(self) -> None:
        if self._streamer is not None:
            self._streamer.cancel.set()
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait(5000)
        self._thread = self._streamer = None

    def _on_queued(self, ahead: int, estimate_s: float) -> None:
        if self.partial:
            return
        where = "being written now" if ahead == 0 else f"{ahead} summar{'y' if ahead == 1 else 'ies'} ahead of it"
        when = f"; about {round(estimate_s)} s" if estimate_s > 0 else ""
        self.summary.setHtml(f"<p><i>Waiting for the summary: {where}{when}.</i></p>")

    def _on_token(self, piece: str) -> None:
        self.partial += piece
        self.summary.setHtml(streaming_html(self.partial))
        self.summary_repaints += 1

    def _on_final(self, s: Any) -> None:
        self.last_summary = s
        self.summary.setHtml(summary_html(s.text, list(s.grounding_flags), s.structured_json, s.stale))
        self.summary_repaints += 1
        if self.current:
            with contextlib.suppress(grpc.RpcError):
                self._title(self.current)  # its status moved on (summarised)

    def _on_failed(self, why: str) -> None:
        self.summary.setHtml(f"<p><b>No summary:</b> {html.escape(why)}. The report on the left is complete; "
                             "request the summary again with Ctrl+R.</p>")

    def request_summary(self) -> None:
        if self.current:
            self.open_document(self.current)  # asking for it puts it at the front of the queue

    def cancel_summary(self) -> None:
        if self.current:
            self._stop_stream()
            self.summary.setHtml(cancelled_html())  # not "Writing…" over a stopped summary
            try:
                self.session.cancel_summary(self.current)
                self.notice.setText("Summary request cancelled.")
            except grpc.RpcError as e:
                self.notice.setText(e.details() or e.code().name)

    def show_source(self, href: str) -> list[tuple[int, int]]:
        """Select and mark, in the report, the words a summary line rests on."""
        spans = [(a, b) for a, b in parse_source(href) if b <= len(self.report.toPlainText())]
        marks = []
        for a, b in spans:
            sel = QTextEdit.ExtraSelection()
            sel.cursor = self.report.textCursor()
            sel.cursor.setPosition(a)
            sel.cursor.setPosition(b, QTextCursor.MoveMode.KeepAnchor)
            sel.format.setBackground(QColor("#bfe3ff"))
            marks.append(sel)
        self.report.setExtraSelections(marks)
        if marks:
            self.report.setTextCursor(marks[0].cursor)
            self.report.ensureCursorVisible()
        return spans

    def reidentify(self, purpose: str | None = None, reason: str = "") -> None:
        if not self.current:
            return
        if purpose is None:
            dialog = PurposeDialog(self)
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return
            purpose, reason = dialog.chosen()
            if not purpose:
                return
        try:
            r = self.session.reidentify(self.current, purpose, reason)
        except grpc.RpcError as e:
            QMessageBox.warning(self, "Not allowed", e.details() or e.code().name)
            return
        self.identified = True
        self.report.setPlainText(r.text)
        self.report_label.setText(f"<b>Report</b> <span style='background:#ffd27a'>&nbsp;IDENTIFIED: real names "
                                  f"and numbers (recorded; hidden again in {REID_SECONDS} s or on leaving)"
                                  "&nbsp;</span>")
        if r.summary:
            s = self.last_summary
            # The identified text with the same highlights (flags quote figures, not names) and the
            # critical banner; the structured lines are de-identified, so they are not reused here.
            self.summary.setHtml(summary_html(r.summary, list(s.grounding_flags) if s else [],
                                              _critical_only(s.structured_json) if s else "", bool(s and s.stale)))
        self.notice.setText(f"<b>Identity shown.</b> This access was recorded in the audit log as "
                            f"{html.escape(self.session.actor)}, purpose: {html.escape(PURPOSES[purpose].lower())}.")
        self.reid_timer.start(REID_SECONDS * 1000)

    def hide_identity(self) -> None:
        """The de-identified view again: after the timeout, or when the clinician asks."""
        if not self.identified or not self.current:
            return
        self._forget_identity()
        try:
            doc = self.session.document(self.current)
            self.report.setPlainText(doc.deidentified_text)
        except grpc.RpcError:
            self.report.clear()
        if self.last_summary is not None:
            self._on_final(self.last_summary)
        self.notice.setText("Identity hidden again.")

    def _forget_identity(self) -> None:
        self.reid_timer.stop()
        self.identified = False
        self.report_label.setText(_DEID_LABEL)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        self.timer.stop()
        self.reid_timer.stop()
        self._stop_stream()
        super().closeEvent(event)
