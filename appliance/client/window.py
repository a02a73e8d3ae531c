"""The clinician's window: a worklist (newest first, live), the de-identified report beside its
summary (streaming in line by line, each line once grounded), summary request and cancel, and re-identification for
those whose role allows it. Nothing is written to disk: no settings, caches or logs with text."""
from __future__ import annotations

import html
import threading
from datetime import datetime

import grpc
from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal
from PySide6.QtGui import QFont, QKeySequence, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QInputDialog, QLabel, QLineEdit,
                               QMainWindow, QMessageBox, QPushButton, QSplitter, QTableWidget, QTableWidgetItem,
                               QTextBrowser, QVBoxLayout, QWidget)

from .render import streaming_html, summary_html
from .session import Row, Session

COLUMNS = ("Received", "Kind", "Source", "Status", "Result", "Document")
PURPOSES = ("TREATMENT", "QUALITY_REVIEW", "PATIENT_REQUEST")
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
    return e.details() or e.code().name


class Streamer(QObject):
    """Follows one document's summary on a worker thread and hands each piece to the UI thread."""

    token = Signal(str)
    final = Signal(object)
    failed = Signal(str)

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

        self.filter = QLineEdit(placeholderText="Filter: document, kind, source, status or date (YYYY-MM-DD)")
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
        lv.addWidget(QLabel("<b>Worklist</b> (newest first; ↑/↓ to move, Enter to open)"))
        lv.addWidget(self.banner)
        lv.addWidget(self.filter)
        lv.addWidget(self.table)

        self.title = QLabel("Open a document from the worklist.")
        self.title.setWordWrap(True)
        self.report = QTextBrowser()
        self.summary = QTextBrowser()
        for view in (self.report, self.summary):
            view.setFont(QFont("DejaVu Sans", 11))
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
        rv.addWidget(QLabel("<b>Report</b> (de-identified)"))
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
        split.setSizes([560, 1000])
        self.setCentralWidget(split)
        QShortcut(QKeySequence("Ctrl+F"), self, activated=self.filter.setFocus)
        QShortcut(QKeySequence("Ctrl+R"), self, activated=self.request_summary)
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
            self.unavailable = True
            self.banner.setText(f"<b>Appliance unavailable</b>: {html.escape(_why(e))}. Retrying every "
                                f"{max(1, round(self.timer_ms / 1000))} s; nothing to do here.")
            self.banner.setVisible(True)
            self.table.setEnabled(False)
            return
        if self.unavailable or not self.windowTitle().endswith(f"({self.session.actor})"):
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

    def _fill(self) -> None:
        wanted = self.filter.text().strip().lower()
        selected = self.current
        self.table.setRowCount(0)
        for r in self.rows:
            received = datetime.fromtimestamp(r.received_ms / 1000).strftime("%Y-%m-%d %H:%M")
            status = STATUS_WORDS.get(r.status, r.status.lower())
            cells = (received, r.kind.split(":", 1)[-1], r.source, status, r.result_status or "—", r.id)
            if wanted and not any(wanted in c.lower() for c in cells):
                continue
            n = self.table.rowCount()
            self.table.insertRow(n)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, r.id)
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
        # Another patient's text never stays on screen: both panes are cleared before anything
        # is asked, and a failure says so in both.
        self.current = None
        self.current_stale = False
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

    def _title(self, doc_id: str):
        doc = self.session.document(doc_id)
        status = STATUS_WORDS.get(self._status_name(doc.status), "")
        result = f", {doc.result_status} result" if doc.result_status else ""
        self.title.setText(f"<b>{html.escape(doc.kind)}</b> from {html.escape(doc.source)} — {status}{result}"
                           + (f" — replaced by {doc.superseded_by}" if doc.superseded_by else ""))
        return doc

    @staticmethod
    def _status_name(value: int) -> str:
        from ..v1 import appliance_pb2 as pb

        return pb.DocumentStatus.Name(value)

    def _follow(self, doc_id: str) -> None:
        self.partial = ""
        streamer = Streamer(self.session, doc_id)
        thread = QThread(self)
        streamer.moveToThread(thread)
        thread.started.connect(streamer.run)
        streamer.token.connect(self._on_token)
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

    def _on_token(self, piece: str) -> None:
        self.partial += piece
        self.summary.setHtml(streaming_html(self.partial))
        self.summary_repaints += 1

    def _on_final(self, s) -> None:
        self.summary.setHtml(summary_html(s.text, list(s.grounding_flags), s.structured_json, s.stale))
        self.summary_repaints += 1
        if self.current:
            try:
                self._title(self.current)  # its status moved on (summarised)
            except grpc.RpcError:
                pass

    def _on_failed(self, why: str) -> None:
        self.summary.setHtml(f"<p><b>No summary:</b> {html.escape(why)}</p>")

    def request_summary(self) -> None:
        if self.current:
            self.open_document(self.current)  # asking for it puts it at the front of the queue

    def cancel_summary(self) -> None:
        if self.current:
            self._stop_stream()
            try:
                self.session.cancel_summary(self.current)
                self.notice.setText("Summary request cancelled.")
            except grpc.RpcError as e:
                self.notice.setText(e.details() or e.code().name)

    def reidentify(self, purpose: str | None = None) -> None:
        if not self.current:
            return
        if purpose is None:
            purpose, ok = QInputDialog.getItem(self, "Purpose of this access",
                                               "Why do you need the patient's identity? (recorded)", PURPOSES, 0,
                                               False)
            if not ok:
                return
        try:
            r = self.session.reidentify(self.current, purpose)
        except grpc.RpcError as e:
            QMessageBox.warning(self, "Not allowed", e.details() or e.code().name)
            return
        self.report.setPlainText(r.text)
        if r.summary:
            self.summary.setPlainText(r.summary)
        self.notice.setText(f"<b>Identity shown.</b> This access was recorded in the audit log as "
                            f"{html.escape(self.session.actor)}, purpose {purpose.lower().replace('_', ' ')}.")

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.timer.stop()
        self._stop_stream()
        super().closeEvent(event)
