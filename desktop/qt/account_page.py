"""The signed-in page: the balance, the packs as cards, and the history."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop.core.api import Pack, Transaction
from desktop.qt import formatting
from desktop.qt.history_model import HistoryModel


class PackCard(QFrame):
    buy = Signal(object)  # Pack

    def __init__(self, pack: Pack, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pack = pack
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setObjectName(f"pack-{pack.id}")
        name = QLabel(pack.name)
        font = name.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.2)
        name.setFont(font)
        credits = QLabel(f"{formatting.number(pack.credits)} credits")
        self.price = QLabel(formatting.money(pack.amount, pack.currency))
        price_font = self.price.font()
        price_font.setPointSizeF(price_font.pointSizeF() * 1.4)
        self.price.setFont(price_font)
        self.button = QPushButton(f"Buy {pack.name}")
        self.button.setAccessibleName(f"Buy the {pack.name} pack: {pack.credits} credits for {self.price.text()}")
        self.button.clicked.connect(lambda: self.buy.emit(self.pack))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 14, 16, 14)
        for widget in (name, credits, self.price):
            layout.addWidget(widget)
        layout.addSpacing(6)
        layout.addWidget(self.button)


class AccountPage(QWidget):
    buyRequested = Signal(object)  # Pack
    loadOlderRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        caption = QLabel("Balance")
        self.balance = QLabel("—")
        self.balance.setObjectName("balance")
        self.balance.setAccessibleName("Credit balance")
        font = self.balance.font()
        font.setPointSizeF(font.pointSizeF() * 3)
        font.setBold(True)
        self.balance.setFont(font)
        self.account = QLabel()
        self.account.setObjectName("accountEmail")
        self.keyring_note = QLabel()
        self.keyring_note.setObjectName("keyringNote")
        self.keyring_note.setWordWrap(True)
        self.keyring_note.hide()
        top = QVBoxLayout()
        top.addWidget(caption)
        top.addWidget(self.balance)
        top.addWidget(self.account)
        top.addWidget(self.keyring_note)

        self.packs_box = QGroupBox("Buy credits")
        self.packs_layout = QHBoxLayout(self.packs_box)
        self.packs_layout.setSpacing(12)
        self.cards: list[PackCard] = []

        history_box = QGroupBox("History")
        self.model = HistoryModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setAccessibleName("Transaction history")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        # Widths from the font, set once: sizing to contents would measure every cell on each refresh, on the
        # GUI thread. The user can still drag them; the description takes the rest.
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        metrics = self.table.fontMetrics()
        samples = ("Adjustment", "+1,000,000", "Balance after", "12/31/2026 12:59 PM")
        for column, sample in enumerate(samples):
            self.table.setColumnWidth(column, metrics.horizontalAdvance(sample) + 24)
        self.empty = QLabel("No transactions yet. Buy a pack to get started.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.load_older = QPushButton("Load &older transactions")
        self.load_older.setAccessibleName("Load older transactions")
        self.load_older.clicked.connect(self.loadOlderRequested.emit)
        self.load_older.hide()
        history_layout = QVBoxLayout(history_box)
        history_layout.addWidget(self.table)
        history_layout.addWidget(self.empty)
        history_layout.addWidget(self.load_older, alignment=Qt.AlignmentFlag.AlignRight)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 18, 18, 12)
        layout.setSpacing(14)
        layout.addLayout(top)
        layout.addWidget(self.packs_box)
        layout.addWidget(history_box, stretch=1)
        self.set_history([], False)

    def set_email(self, email: str, keyring_note: str = "") -> None:
        """``keyring_note`` says where the sign-in is kept when that is not the system keyring."""
        self.account.setText(f"Signed in as {email}")
        self.keyring_note.setText(keyring_note)
        self.keyring_note.setVisible(bool(keyring_note))

    def set_balance(self, balance: int | None) -> None:
        self.balance.setText("—" if balance is None else f"{formatting.number(balance)} credits")

    def set_packs(self, packs: list[Pack]) -> None:
        for card in self.cards:
            card.deleteLater()
        self.cards = []
        while self.packs_layout.count():
            self.packs_layout.takeAt(0)
        for pack in packs:
            card = PackCard(pack)
            card.buy.connect(self.buyRequested.emit)
            self.cards.append(card)
            self.packs_layout.addWidget(card)
        self.packs_layout.addStretch()

    def set_buying(self, buying: bool) -> None:
        for card in self.cards:
            card.button.setEnabled(not buying)

    def set_history(self, rows: list[Transaction], has_more: bool) -> None:
        self.model.set_rows(rows)
        self.table.setVisible(bool(rows))
        self.empty.setVisible(not rows)
        self.load_older.setVisible(has_more)
        self.load_older.setEnabled(True)
