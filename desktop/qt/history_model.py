"""The transaction history as a table model."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from desktop.core.api import Transaction
from desktop.qt import formatting

TYPE_LABELS = {"purchase": "Purchase", "spend": "Spent", "refund": "Refund", "adjustment": "Adjustment"}
COLUMNS = ("Type", "Amount", "Balance after", "Date", "Description")

Index = QModelIndex | QPersistentModelIndex


class HistoryModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Transaction] = []

    def set_rows(self, rows: list[Transaction]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
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
        if not index.isValid():
            return None
        row, column = self.rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (
                TYPE_LABELS.get(row.type, row.type.title()),
                formatting.signed(row.amount),
                formatting.number(row.balance_after),
                formatting.timestamp(row.created_at),
                row.description,
            )[column]
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (1, 2):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and column == 1 and row.amount < 0:
            return QColor("#b42318")
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"Reference: {row.reference}"
        return None
