"""The alert inbox: every alert, newest first, unread in bold; marking read; which kinds notify; a test."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QTimeZone
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.alert_inbox import SWITCHABLE, label
from desktop.core.spend_models import Alert, AlertPage
from desktop.core.spending import local_time
from desktop.qt import formatting, screen_fit
from desktop.qt.spend_controller import SpendController


class AlertsWindow(QDialog):
    def __init__(self, spending: SpendController, where: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spending = spending
        self.setWindowTitle("Alerts")
        self.setObjectName("alertsWindow")
        self.alerts: list[Alert] = []
        self.next_cursor: str | None = None

        self.summary = QLabel()
        self.summary.setObjectName("alertsSummary")
        self.list = QListWidget()
        self.list.setObjectName("alertList")
        self.list.setAccessibleName("Alerts")
        self.list.setWordWrap(True)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setAlternatingRowColors(True)
        self.list.setSpacing(3)
        self.list.itemActivated.connect(lambda item: self.spending.mark_read([item.data(Qt.ItemDataRole.UserRole)]))
        self.mark_read_button = QPushButton("Mark &read")
        self.mark_all_button = QPushButton("Mark &all read")
        self.older_button = QPushButton("Load &older")
        self.older_button.hide()
        self.mark_read_button.clicked.connect(self._mark_selected)
        self.mark_read_button.setEnabled(False)
        self.list.itemSelectionChanged.connect(
            lambda: self.mark_read_button.setEnabled(bool(self.list.selectedItems())))
        self.mark_all_button.clicked.connect(lambda: self.spending.mark_read(None))
        self.older_button.clicked.connect(self._load_older)
        actions = QHBoxLayout()
        actions.addWidget(self.mark_read_button)
        actions.addWidget(self.mark_all_button)
        actions.addStretch()
        actions.addWidget(self.older_button)

        switches_box = QGroupBox("Desktop notifications")
        switches = QGridLayout(switches_box)
        note = QLabel(f"New alerts appear in the {where} once each, also those that arrived while Creditdesk was "
                      "closed. Every alert stays in this list.")
        note.setWordWrap(True)
        columns = 2  # three of the longer names ("Balance below your top-up threshold") overflow the window
        switches.addWidget(note, 0, 0, 1, columns)
        self.switches: dict[str, QCheckBox] = {}
        for n, kind in enumerate(SWITCHABLE):
            box = QCheckBox(label(kind))
            box.setChecked(True)
            box.toggled.connect(self._switched)
            self.switches[kind] = box
            switches.addWidget(box, 1 + n // columns, n % columns)
        self.test_button = QPushButton("Send a &test notification")
        self.test_button.clicked.connect(self._send_test)
        switches.addWidget(self.test_button, 1 + len(SWITCHABLE) // columns + 1, 0, 1, columns,
                           Qt.AlignmentFlag.AlignLeft)

        # The inbox scrolls as a whole where the screen is too small for it; Close stays in view below it.
        inbox = QWidget()
        content = QVBoxLayout(inbox)
        content.setContentsMargins(0, 0, 0, 0)
        content.addWidget(self.summary)
        content.addWidget(self.list, 1)
        content.addLayout(actions)
        content.addWidget(switches_box)
        layout = QVBoxLayout(self)
        layout.addWidget(screen_fit.scrolling(inbox, "alertsScroll"), 1)
        self.close_button = QPushButton("Close")  # (Esc too)
        self.close_button.clicked.connect(self.close)
        closing = QHBoxLayout()
        closing.addStretch()
        closing.addWidget(self.close_button)
        layout.addLayout(closing)
        screen_fit.keep_on_screen(self, QSize(620, 560))

        spending.alertsChanged.connect(self._alerts_changed)
        spending.mutedChanged.connect(self._show_muted)
        self._show_muted(spending.muted)
        self.reload()

    def _alerts_changed(self, _page: object) -> None:
        self.reload()

    # -- the list -----------------------------------------------------------------------------------------------

    def reload(self) -> None:
        if self.isVisible() or not self.alerts:
            self.spending.all_alerts(self._loaded)

    def _loaded(self, page: AlertPage) -> None:
        self.alerts = list(page.items)
        self.next_cursor = page.next_cursor
        self._show()

    def _load_older(self) -> None:
        if self.next_cursor:
            self.spending.all_alerts(self._older_loaded, before=self.next_cursor)

    def _older_loaded(self, page: AlertPage) -> None:
        known = {a.id for a in self.alerts}
        self.alerts += [a for a in page.items if a.id not in known]
        self.next_cursor = page.next_cursor
        self._show()

    def _show(self) -> None:
        selected = {item.data(Qt.ItemDataRole.UserRole) for item in self.list.selectedItems()}
        zone = self.spending.controls.time_zone if self.spending.controls else None
        qzone = QTimeZone(zone.encode()) if zone else None  # an expiry in the zone the alerts' times are in
        self.list.clear()
        for alert in self.alerts:
            when = formatting.local_datetime(local_time(alert.created_at, zone))
            message = formatting.alert_message(alert.kind, alert.message, alert.data,
                                               zone=qzone if qzone is not None and qzone.isValid() else None)
            item = QListWidgetItem(f"{label(alert.kind)} · {when}\n{message}")
            item.setData(Qt.ItemDataRole.UserRole, alert.id)
            font = item.font()
            font.setBold(alert.unread)
            item.setFont(font)
            item.setData(Qt.ItemDataRole.AccessibleTextRole,
                         f"{'Unread: ' if alert.unread else ''}{label(alert.kind)}, {when}. {message}")
            self.list.addItem(item)
            item.setSelected(alert.id in selected)
        unread = sum(a.unread for a in self.alerts)
        self.summary.setText(f"{unread} unread" if self.alerts else "No alerts yet.")
        self.mark_all_button.setEnabled(unread > 0)
        self.older_button.setVisible(self.next_cursor is not None)

    def _mark_selected(self) -> None:
        ids = [item.data(Qt.ItemDataRole.UserRole) for item in self.list.selectedItems()]
        if ids:
            self.spending.mark_read(ids)

    # -- switches -----------------------------------------------------------------------------------------------

    def _show_muted(self, muted: frozenset[str]) -> None:
        for kind, box in self.switches.items():
            box.blockSignals(True)
            box.setChecked(kind not in muted)
            box.blockSignals(False)

    def _switched(self) -> None:
        self.spending.set_muted(kind for kind, box in self.switches.items() if not box.isChecked())

    def _send_test(self) -> None:
        self.spending.send_test()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.spending.all_alerts(self._loaded)
