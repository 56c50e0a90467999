"""The spend controls: caps per day, week and month, "confirm above", low-balance alerts, and their history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QHideEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.core.spend_models import PERIODS, SpendControls
from desktop.core.spending import FIELD_NAMES, describe_value, local_time, parse_thresholds, time_zone_names
from desktop.qt import formatting, screen_fit
from desktop.qt.spend_controller import SpendController

MAX_CREDITS = 1_000_000_000
PERIOD_LABELS = {"day": "Per &day", "week": "Per &week (Monday to Sunday)", "month": "Per &month"}
PERIOD_NOUNS = {"day": "today", "week": "this week", "month": "this month"}


class CapRow:
    """A checkbox that turns a cap on, its amount, and what is used of it so far."""

    def __init__(self, period: str) -> None:
        self.period = period
        self.enabled = QCheckBox(PERIOD_LABELS[period])
        self.amount = QSpinBox()
        self.amount.setRange(0, MAX_CREDITS)
        self.amount.setGroupSeparatorShown(True)
        self.amount.setSuffix(" credits")
        self.amount.setAccessibleName(f"{period.capitalize()} cap in credits")
        self.amount.setEnabled(False)
        self.use = QLabel()
        self.use.setObjectName(f"use-{period}")
        self.use.setWordWrap(True)
        self.enabled.toggled.connect(self.amount.setEnabled)

    def value(self) -> int | None:
        return self.amount.value() if self.enabled.isChecked() else None

    def set_value(self, value: int | None) -> None:
        self.enabled.setChecked(value is not None)
        self.amount.setValue(value or 0)


class SpendControlsWindow(QDialog):
    def __init__(self, spending: SpendController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spending = spending
        self.setWindowTitle("Spend controls")
        self.setObjectName("spendControlsWindow")
        self.controls: SpendControls | None = None

        intro = QLabel("Limits on what your applications may spend from your credits. Periods are counted in "
                       "your time zone; a change applies to the next spend and undoes nothing already spent.")
        intro.setWordWrap(True)

        self.time_zone = QComboBox()
        self.time_zone.setEditable(True)
        self.time_zone.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.time_zone.setAccessibleName("Time zone")
        self.time_zone.setMinimumContentsLength(24)
        completer = QCompleter(self.time_zone.model(), self.time_zone)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.time_zone.setCompleter(completer)
        zone_row = QHBoxLayout()
        zone_label = QLabel("&Time zone:")
        zone_label.setBuddy(self.time_zone)
        zone_row.addWidget(zone_label)
        zone_row.addWidget(self.time_zone, 1)

        caps_box = QGroupBox("Caps")
        grid = QGridLayout(caps_box)
        self.caps = {p: CapRow(p) for p in PERIODS}
        for row, cap in enumerate(self.caps.values()):
            grid.addWidget(cap.enabled, row, 0)
            grid.addWidget(cap.amount, row, 1)
            grid.addWidget(cap.use, row, 2)
        grid.setColumnStretch(2, 1)

        confirm_box = QGroupBox("Confirmation")
        self.confirm_enabled = QCheckBox("Ask me to &confirm spends above")
        self.confirm_above = QSpinBox()
        self.confirm_above.setRange(0, MAX_CREDITS)
        self.confirm_above.setGroupSeparatorShown(True)
        self.confirm_above.setSuffix(" credits")
        self.confirm_above.setAccessibleName("Confirm spends above, in credits")
        self.confirm_above.setEnabled(False)
        self.confirm_enabled.toggled.connect(self.confirm_above.setEnabled)
        confirm_row = QHBoxLayout(confirm_box)
        confirm_row.addWidget(self.confirm_enabled)
        confirm_row.addWidget(self.confirm_above)
        confirm_row.addStretch()

        alerts_box = QGroupBox("Low-balance alerts")
        self.thresholds = QLineEdit()
        self.thresholds.setPlaceholderText("e.g. 500, 100")
        self.thresholds.setAccessibleName("Alert me when my balance goes below these levels")
        alerts_label = QLabel("Alert me when my balance goes &below:")
        alerts_label.setBuddy(self.thresholds)
        hint = QLabel("Up to 10 levels, separated by commas. Each alerts once when the balance falls below it, "
                      "and again only after it has risen above it.")
        hint.setWordWrap(True)
        hint.setEnabled(False)
        alerts_layout = QVBoxLayout(alerts_box)
        threshold_row = QHBoxLayout()
        threshold_row.addWidget(alerts_label)
        threshold_row.addWidget(self.thresholds, 1)
        alerts_layout.addLayout(threshold_row)
        alerts_layout.addWidget(hint)

        self.status = QLabel()
        self.status.setObjectName("controlsStatus")
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox()
        self.save_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Save)
        self.revert_button = self.buttons.addButton("&Revert", QDialogButtonBox.ButtonRole.ResetRole)
        close = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        # The standard buttons' texts are the platform theme's, with or without a mnemonic ("&Save" on some):
        # ours are the same everywhere, so that no two clash (Esc closes).
        self.save_button.setText("&Save")
        close.setText("Close")
        self.save_button.clicked.connect(self.save)
        self.revert_button.clicked.connect(lambda: self.show_controls(self.controls) if self.controls else None)
        close.clicked.connect(self.close)
        QShortcut(QKeySequence(QKeySequence.StandardKey.Save), self).activated.connect(self.save)

        history_box = QGroupBox("Changes")
        self.history = QTableWidget(0, 4)
        self.history.setHorizontalHeaderLabels(["When", "Setting", "From", "To"])
        self.history.setAccessibleName("History of changes")
        self.history.verticalHeader().setVisible(False)
        self.history.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.history.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.history.horizontalHeader().setStretchLastSection(True)
        QVBoxLayout(history_box).addWidget(self.history)

        # The settings scroll where the screen is too small for them (2x on 1366 x 768); the status and the
        # buttons stay in view below them.
        settings = QWidget()
        content = QVBoxLayout(settings)
        content.setContentsMargins(0, 0, 0, 0)
        content.addWidget(intro)
        content.addLayout(zone_row)
        content.addWidget(caps_box)
        content.addWidget(confirm_box)
        content.addWidget(alerts_box)
        content.addWidget(history_box, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(screen_fit.scrolling(settings, "controlsScroll"), 1)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)  # at the bottom, as a dialog's buttons are
        screen_fit.keep_on_screen(self, QSize(760, 660))

        spending.controlsChanged.connect(self.show_controls)
        spending.controlsFailed.connect(self.status.setText)
        spending.app.workers.run(time_zone_names, self._zones_loaded)
        if spending.controls is not None:
            self.show_controls(spending.controls)
        spending.load_controls()

    def _zones_loaded(self, names: list[str]) -> None:
        current = self.time_zone.currentText()
        self.time_zone.clear()
        self.time_zone.addItems(names)
        self.time_zone.setCurrentText(current)

    # -- showing ------------------------------------------------------------------------------------------------

    def show_controls(self, controls: SpendControls) -> None:
        self.controls = controls
        if self.time_zone.findText(controls.time_zone) < 0:
            self.time_zone.addItem(controls.time_zone)
        self.time_zone.setCurrentText(controls.time_zone)
        for period, cap in self.caps.items():
            cap.set_value(controls.caps.get(period))
            cap.use.setText(self._use_text(controls, period))
        self.confirm_enabled.setChecked(controls.confirm_above is not None)
        self.confirm_above.setValue(controls.confirm_above or 0)
        self.thresholds.setText(", ".join(str(t) for t in controls.low_balance_alerts))
        self.history.setRowCount(len(controls.history))
        for row, change in enumerate(controls.history):
            when = formatting.local_datetime(local_time(change.changed_at, controls.time_zone))
            cells = (when, FIELD_NAMES.get(change.field, change.field), describe_value(change.field, change.old),
                     describe_value(change.field, change.new))
            for column, text in enumerate(cells):
                self.history.setItem(row, column, QTableWidgetItem(text))

    def _use_text(self, controls: SpendControls, period: str) -> str:
        use = controls.periods.get(period)
        if use is None:
            return ""
        resets = formatting.local_datetime(local_time(use.resets_at, controls.time_zone))
        spent = f"{formatting.number(use.used)} spent {PERIOD_NOUNS[period]}"
        if use.cap is not None:
            spent = f"{formatting.number(use.used)} of {formatting.number(use.cap)} spent {PERIOD_NOUNS[period]}"
        return f"{spent} · resets {resets}"

    # -- saving -------------------------------------------------------------------------------------------------

    def changes(self) -> dict[str, Any]:
        """What differs from the controls shown, in the API's names; ValueError with a sentence if invalid."""
        current = self.controls
        if current is None:
            return {}
        found: dict[str, Any] = {}
        zone = self.time_zone.currentText().strip()
        if zone != current.time_zone:
            if self.time_zone.findText(zone, Qt.MatchFlag.MatchExactly) < 0:
                raise ValueError(f"{zone!r} is not a time zone; choose one from the list, like Europe/Paris.")
            found["timeZone"] = zone
        caps = {p: row.value() for p, row in self.caps.items() if row.value() != current.caps.get(p)}
        if caps:
            found["caps"] = caps
        confirm = self.confirm_above.value() if self.confirm_enabled.isChecked() else None
        if confirm != current.confirm_above:
            found["confirmAbove"] = confirm
        thresholds = parse_thresholds(self.thresholds.text())
        if tuple(thresholds) != current.low_balance_alerts:
            found["lowBalanceAlerts"] = thresholds
        return found

    def hideEvent(self, event: QHideEvent) -> None:
        """What the status said was about this visit: the next one starts without it (unless a save is still
        under way, whose outcome it will say)."""
        if self.save_button.isEnabled():
            self.status.clear()
        super().hideEvent(event)

    def save(self) -> None:
        try:
            changes = self.changes()
        except ValueError as exc:
            self.status.setText(str(exc))
            return
        if not changes:
            self.status.setText("Nothing to save: the controls are as shown.")
            return
        self.save_button.setEnabled(False)
        self.status.setText("Saving…")

        def done(_: SpendControls) -> None:
            self.save_button.setEnabled(True)
            saved_at = formatting.clock(datetime.now(UTC))
            self.status.setText(f"Saved at {saved_at}. The new controls apply to the next spend.")

        def failed(message: str) -> None:
            self.save_button.setEnabled(True)
            self.status.setText(message)

        self.spending.save_controls(changes, done, failed)
