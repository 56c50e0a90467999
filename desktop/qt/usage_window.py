"""The usage dashboard: spending and purchases per day, week or month as a chart, where the credits went, how
long the balance lasts, and the CSV export of the ledger for the range shown."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from pathlib import Path
from threading import Event

from PySide6.QtCharts import QBarSeries, QBarSet, QCategoryAxis, QChart, QChartView, QValueAxis
from PySide6.QtCore import QDate, QObject, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.core.models import CancelledDownload
from desktop.core.spend_models import Usage
from desktop.core.usage import forecast_text, shares, totals_text
from desktop.qt import formatting, screen_fit
from desktop.qt.spend_controller import SpendController
from desktop.qt.workers import describe

MAX_LABELS = 10
GRANULARITIES = (("Day", "day"), ("Week", "week"), ("Month", "month"))
SERIES = (("Spent", "spent", "#d92d20"), ("Bought", "purchased", "#12b76a"), ("Taken back", "clawed_back", "#f79009"))

# Where to save the CSV: a dialog by default; tests give a function that answers at once.
SaveChooser = Callable[[QWidget, str], str | None]


def ask_where_to_save(parent: QWidget, suggested: str) -> str | None:
    path, _ = QFileDialog.getSaveFileName(parent, "Export transactions as CSV", suggested,
                                          "CSV files (*.csv);;All files (*)")
    return path or None


class _Progress(QObject):
    """Carries the download's progress from the worker thread to the GUI thread."""

    changed = Signal(int)


class UsageWindow(QDialog):
    def __init__(self, spending: SpendController, parent: QWidget | None = None, *,
                 choose_path: SaveChooser = ask_where_to_save) -> None:
        super().__init__(parent)
        self.spending = spending
        self.choose_path = choose_path
        self.setWindowTitle("Usage")
        self.setObjectName("usageWindow")
        self.usage: Usage | None = None
        self._cancel: Event | None = None
        self._last_folder: Path | None = None  # where the last export was saved

        self.granularity = QComboBox()
        for text, value in GRANULARITIES:
            self.granularity.addItem(text, value)
        self.granularity.setAccessibleName("Group by")
        self.first = QDateEdit()
        self.last = QDateEdit()
        for edit, name in ((self.first, "From"), (self.last, "To")):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setAccessibleName(name)
        self.show_button = QPushButton("&Show")
        self.show_button.clicked.connect(self.refresh)
        self.granularity.currentIndexChanged.connect(lambda _: self.refresh(default_range=True))
        controls = QHBoxLayout()
        for text, widget in (("&Group by:", self.granularity), ("&From:", self.first), ("&To:", self.last)):
            caption = QLabel(text)
            caption.setBuddy(widget)
            controls.addWidget(caption)
            controls.addWidget(widget)
        controls.addWidget(self.show_button)
        controls.addStretch()

        self.chart = QChart()
        self.chart.setAnimationOptions(QChart.AnimationOption.NoAnimation)
        self.chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        self.chart.setMargins(self.chart.margins() * 0)
        self.chart_view = QChartView(self.chart)
        self.chart_view.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.chart_view.setMinimumHeight(260)
        self.chart_view.setAccessibleName("Chart of credits spent and bought")

        self.totals = QLabel()
        self.totals.setObjectName("usageTotals")
        self.totals.setWordWrap(True)
        self.forecast = QLabel()
        self.forecast.setObjectName("usageForecast")
        self.forecast.setWordWrap(True)
        font = self.forecast.font()
        font.setBold(True)
        self.forecast.setFont(font)

        self.breakdown = QTableWidget(0, 3)
        self.breakdown.setObjectName("usageBreakdown")
        self.breakdown.setHorizontalHeaderLabels(["Feature or description", "Spent", "Share"])
        self.breakdown.setAccessibleName("Spending by feature or description")
        self.breakdown.verticalHeader().setVisible(False)
        self.breakdown.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.breakdown.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in (1, 2):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.breakdown.setMaximumHeight(200)

        self.export_button = QPushButton("&Export CSV…")
        self.export_button.setToolTip("Every transaction of the range shown, for a spreadsheet")
        self.export_button.clicked.connect(self.export)
        self.cancel_button = QPushButton("Cancel export")
        self.cancel_button.clicked.connect(self._cancel_export)
        self.cancel_button.hide()
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setMaximumWidth(160)
        self.progress.hide()
        self.status = QLabel()
        self.status.setObjectName("usageStatus")
        self.status.setWordWrap(True)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.progress)
        bottom.addWidget(self.cancel_button)
        bottom.addWidget(self.export_button)
        self.close_button = QPushButton("Close")  # (Esc too)
        self.close_button.setAutoDefault(False)
        self.close_button.clicked.connect(self.close)
        bottom.addWidget(self.close_button)

        # The dashboard scrolls where the screen is too small for it (the chart keeps its height); the status and
        # the buttons stay in view below it.
        dashboard = QWidget()
        content = QVBoxLayout(dashboard)
        content.setContentsMargins(0, 0, 0, 0)
        content.addLayout(controls)
        content.addWidget(self.chart_view, 1)
        content.addWidget(self.totals)
        content.addWidget(self.forecast)
        content.addWidget(self.breakdown)
        layout = QVBoxLayout(self)
        layout.addWidget(screen_fit.scrolling(dashboard, "usageScroll"), 1)
        layout.addLayout(bottom)
        screen_fit.keep_on_screen(self, QSize(820, 700))

        self._progress = _Progress(self)
        self._progress.changed.connect(self._show_progress)
        spending.usageChanged.connect(self.show_usage)
        spending.usageFailed.connect(self.status.setText)
        self.refresh(default_range=True)

    # -- the dashboard ------------------------------------------------------------------------------------------

    def refresh(self, *, default_range: bool = False) -> None:
        granularity = self.granularity.currentData()
        self.status.setText("Loading…")
        if default_range or self.usage is None:
            self.spending.load_usage(granularity)
        else:
            self.spending.load_usage(granularity, _to_date(self.first.date()), _to_date(self.last.date()))

    def show_usage(self, usage: Usage) -> None:
        self.usage = usage
        self.status.setText(f"In your time zone, {usage.time_zone}.")
        for edit, day in ((self.first, usage.first), (self.last, usage.last)):
            edit.blockSignals(True)
            edit.setDate(QDate(day.year, day.month, day.day))
            edit.blockSignals(False)
        self._draw(usage)
        self.totals.setText(totals_text(usage.totals))
        self.forecast.setText(forecast_text(usage.forecast))
        self.breakdown.setRowCount(len(usage.by_description))
        percents = shares([amount for _, amount, _ in usage.by_description])  # adding up to 100 %
        for row, ((text, amount, rest), percent) in enumerate(zip(usage.by_description, percents, strict=True)):
            cells = ("Everything else" if rest else (text or "(no description)"), formatting.number(amount),
                     f"{percent} %")
            for column, value in enumerate(cells):
                item = QTableWidgetItem(value)
                if column:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.breakdown.setItem(row, column, item)

    def _draw(self, usage: Usage) -> None:
        self.chart.removeAllSeries()
        for axis in self.chart.axes():
            self.chart.removeAxis(axis)
        series = QBarSeries()
        series.setBarWidth(0.9)
        highest = 0
        for name, field, color in SERIES:
            values = [getattr(b, field) for b in usage.buckets]
            if name == "Taken back" and not any(values):
                continue
            bar_set = QBarSet(name)
            bar_set.setColor(QColor(color))
            bar_set.append([float(v) for v in values])
            series.append(bar_set)
            highest = max(highest, *values, 0)
        self.chart.addSeries(series)
        # Bars stand at 0 .. n-1 on a value axis, labelled at every step-th bar: a label for every day of a year
        # would not fit (and a category axis drops repeated labels).
        x = QCategoryAxis()
        x.setLabelsPosition(QCategoryAxis.AxisLabelsPosition.AxisLabelsPositionOnValue)
        count = len(usage.buckets)
        x.setRange(-0.5, count - 0.5)
        step = max(1, math.ceil(count / MAX_LABELS))
        for n, text in enumerate(self._labels(usage)):
            if n % step == 0:
                x.append(text, n)
        x.setGridLineVisible(False)
        x.setTitleText(self._span(usage))
        y = QValueAxis()
        y.setRange(0, max(10, highest))
        y.applyNiceNumbers()
        y.setLabelFormat("%d")
        y.setTitleText("credits")
        self.chart.addAxis(x, Qt.AlignmentFlag.AlignBottom)
        self.chart.addAxis(y, Qt.AlignmentFlag.AlignLeft)
        series.attachAxis(x)
        series.attachAxis(y)

    @staticmethod
    def _labels(usage: Usage) -> list[str]:
        """Days and weeks by their first day, months by name; with the year where a range spans more than one."""
        starts = [b.start for b in usage.buckets]
        if usage.granularity == "month":
            return [formatting.month_name(day) for day in starts]
        years = usage.first.year != usage.last.year and (usage.last - usage.first).days > 300
        return [formatting.short_date(day, with_year=years) for day in starts]

    @staticmethod
    def _span(usage: Usage) -> str:
        first = formatting.short_date(usage.first, with_year=usage.first.year != usage.last.year)
        return f"{first} \u2013 {formatting.short_date(usage.last, with_year=True)}"

    # -- CSV ----------------------------------------------------------------------------------------------------

    def export(self) -> None:
        usage = self.usage
        if usage is None:
            return
        folder = self._last_folder or Path.home()  # where the last export went, while the app runs
        suggested = str(folder / f"creditdesk-transactions-{usage.first}-to-{usage.last}.csv")
        chosen = self.choose_path(self, suggested)
        if not chosen:
            return
        path = Path(chosen)
        cancel = Event()
        self._cancel = cancel
        self._exporting(True, f"Exporting to {path.name}…")
        self.spending.export_csv(
            path, usage.first, usage.last, progress=self._progress.changed.emit, cancelled=cancel.is_set,
            on_done=lambda size: self._exported(path, size), on_error=self._export_failed,
        )

    def _show_progress(self, written: int) -> None:
        self.status.setText(f"Exporting… {formatting.number(written // 1024)} KB")

    def _exported(self, path: Path, size: int) -> None:
        self._last_folder = path.parent
        self._exporting(False, f"Saved {path.name} ({formatting.number(max(1, size // 1024))} KB) in {path.parent}.")

    def _export_failed(self, error: BaseException) -> None:
        message = "Export cancelled; nothing was saved." if isinstance(error, CancelledDownload) else describe(error)
        self._exporting(False, message)

    def _cancel_export(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def _exporting(self, busy: bool, message: str) -> None:
        self.export_button.setEnabled(not busy)
        self.cancel_button.setVisible(busy)
        self.progress.setVisible(busy)
        self.status.setText(message)
        if not busy:
            self._cancel = None


def _to_date(value: QDate) -> date:
    return date(value.year(), value.month(), value.day())
