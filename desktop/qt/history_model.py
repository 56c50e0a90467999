"""The transaction history as a table model.

Rows are formatted once, when they arrive: Qt asks ``data()`` for every cell and role whenever it
measures or paints, and formatting dates and numbers there made each refresh stall the window.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from desktop.core.api import Transaction
from desktop.qt import formatting

TYPE_LABELS = {"purchase": "Purchase", "spend": "Spent", "refund": "Refund", "adjustment": "Adjustment"}
COLUMNS = ("Type", "Amount", "Balance after", "Date", "Description")
RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
NEGATIVE = QColor("#b42318")

Index = QModelIndex | QPersistentModelIndex


def display(row: Transaction) -> tuple[str, str, str, str, str]:
    return (
        TYPE_LABELS.get(row.type, row.type.title()),
        formatting.signed(row.amount),
        formatting.number(row.balance_after),
        formatting.timestamp(row.created_at),
        row.description,
    )


class HistoryModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Transaction] = []
        self._text: list[tuple[str, str, str, str, str]] = []

    def set_rows(self, rows: list[Transaction]) -> None:
        """Show ``rows``; when they only add older rows after the current ones, append instead of resetting."""
        rows = list(rows)
        count = len(self.rows)
        if count and len(rows) > count and rows[:count] == self.rows:
            self.beginInsertRows(QModelIndex(), count, len(rows) - 1)
            self.rows = rows
            self._text += [display(row) for row in rows[count:]]
            self.endInsertRows()
            return
        if rows == self.rows:
            return
        self.beginResetModel()
        self.rows = rows
        self._text = [display(row) for row in rows]
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text[index.row()][index.column()]
        column = index.column()
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (1, 2):
            return RIGHT
        if role == Qt.ItemDataRole.ForegroundRole and column == 1 and self.rows[index.row()].amount < 0:
            return NEGATIVE
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"Reference: {self.rows[index.row()].reference}"
        return None
