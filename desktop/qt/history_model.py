"""The transaction history as a table model.

Rows are formatted once, when they arrive: Qt asks ``data()`` for every cell and role whenever it
measures or paints, and formatting dates and numbers there made each refresh stall the window.
New rows are inserted (on top, or below when older pages load), never a reset, so that the view keeps
its selection and scroll position across refreshes.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from desktop.core.models import Transaction
from desktop.qt import formatting

TYPE_LABELS = {"purchase": "Purchase", "spend": "Spent", "refund": "Refund", "adjustment": "Adjustment",
               "dispute": "Disputed", "dispute_reversal": "Dispute won", "refund_reversal": "Refund reversed",
               "expiry": "Expired", "bonus": "Bonus"}
COLUMNS = ("Type", "Amount", "Balance after", "Date", "Description")
RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
NEGATIVE = QColor("#b42318")

Index = QModelIndex | QPersistentModelIndex


def describe(row: Transaction) -> str:
    """The description, with what was paid for a purchase: ``Standard pack · paid $25.00``."""
    text = row.description or ""
    if row.payment is not None:
        paid = f"paid {formatting.money(row.payment.amount, row.payment.currency)}"
        text = f"{text} · {paid}" if text else paid.capitalize()
    return text


def display(row: Transaction) -> tuple[str, str, str, str, str]:
    return (
        TYPE_LABELS.get(row.type, row.type.replace("_", " ").capitalize()),
        formatting.signed(row.amount),
        formatting.number(row.balance_after),
        formatting.timestamp(row.created_at),
        describe(row),
    )


class HistoryModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Transaction] = []
        self._text: list[tuple[str, str, str, str, str]] = []

    def set_rows(self, rows: list[Transaction]) -> None:
        """Show ``rows``. When they are the current rows with new ones before and/or after them, insert those
        (selection and scroll position stay); anything else resets the model."""
        rows = list(rows)
        if rows == self.rows:
            return
        count = len(self.rows)
        if count:
            ids = [row.id for row in rows]
            first = self.rows[0].id
            start = ids.index(first) if first in ids else -1
            if start >= 0 and rows[start:start + count] == self.rows:
                if start:
                    self.beginInsertRows(QModelIndex(), 0, start - 1)
                    self.rows = rows[:start] + self.rows
                    self._text = [display(row) for row in rows[:start]] + self._text
                    self.endInsertRows()
                if len(rows) > len(self.rows):
                    old = len(self.rows)
                    self.beginInsertRows(QModelIndex(), old, len(rows) - 1)
                    self.rows = rows
                    self._text += [display(row) for row in rows[old:]]
                    self.endInsertRows()
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
            row = self.rows[index.row()]
            order = f"\nOrder: {row.order_id}" if row.order_id else ""
            return f"Reference: {row.reference}{order}"
        return None
