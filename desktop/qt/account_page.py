"""The signed-in page: the balance, purchases in flight, the packs as cards, and the history.

The page scrolls as a whole when the window is small, so that the history always shows several rows; the
history table lets Tab through (Tab moves between controls, the arrow keys between rows).
"""

from __future__ import annotations

import itertools

from PySide6.QtCore import QSize, Qt, QTimeZone, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop.core.models import GrantSummary, Pack, Transaction
from desktop.core.pack_values import PackValue, pack_values, tax_words
from desktop.qt import formatting
from desktop.qt.history_model import HistoryModel
from desktop.qt.purchase_panel import PurchasePanel

HISTORY_MIN_ROWS = 6
STALE_STYLE = "color: palette(placeholder-text);"


class PackCard(QFrame):
    buy = Signal(object)  # Pack

    def __init__(self, pack: Pack, value: PackValue | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pack = pack
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setObjectName(f"pack-{pack.id}")
        # The cards share the row's width equally (their own widths differ with their texts), never narrower
        # than their content.
        policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        policy.setHorizontalStretch(1)
        self.setSizePolicy(policy)
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
        # "+ tax" where checkout adds tax on top of the price, "incl. tax" where the price holds it.
        self.tax = QLabel(tax_words(pack))
        self.tax.setObjectName("packTax")
        self.tax.setStyleSheet(STALE_STYLE)
        if not self.tax.text():
            self.tax.hide()  # (hidden only: shown before it has a parent it would open as a window of its own)
        price_row = QHBoxLayout()
        price_row.setSpacing(6)
        price_row.addWidget(self.price, 0, Qt.AlignmentFlag.AlignBaseline)
        price_row.addWidget(self.tax, 0, Qt.AlignmentFlag.AlignBaseline)
        price_row.addStretch(1)
        self.per_credit = QLabel(f"{formatting.unit_price(pack.per_credit, pack.currency)} per credit")
        self.per_credit.setObjectName("perCredit")
        self.per_credit.setStyleSheet(STALE_STYLE)  # the muted colour of secondary text
        worth = ""
        if value is not None and value.saving is not None:
            worth = f"Save {value.saving}%"
        self.value = QLabel(f"Best value · {worth}" if value is not None and value.best and worth else worth)
        self.value.setObjectName("packValue")
        if not self.value.text():
            # Hidden but keeping its place, so that the cards' lines stay level; (never show() it before it has a
            # parent: it would open as a window of its own).
            kept = self.value.sizePolicy()
            kept.setRetainSizeWhenHidden(True)
            self.value.setSizePolicy(kept)
            self.value.hide()
        bold = self.value.font()
        bold.setBold(True)
        self.value.setFont(bold)
        self.button = QPushButton(f"Buy {pack.name}")
        said = f", {self.per_credit.text()}" + (f", {self.value.text().lower()}" if self.value.text() else "")
        self.button.setAccessibleName(
            f"Buy the {pack.name} pack: {formatting.number(pack.credits)} credits for {self.price.text()}"
            f"{' ' + self.tax.text() if self.tax.text() else ''}{said}")
        self.button.clicked.connect(lambda: self.buy.emit(self.pack))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addWidget(name)
        layout.addWidget(credits)
        layout.addLayout(price_row)
        for widget in (self.per_credit, self.value):
            layout.addWidget(widget)
        layout.addSpacing(4)
        layout.addWidget(self.button)
        self.setMinimumWidth(self.minimumSizeHint().width())


class HistoryTable(QTableView):
    """A table whose smallest height still shows ``HISTORY_MIN_ROWS`` rows."""

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        rows = self.verticalHeader().defaultSectionSize() * HISTORY_MIN_ROWS
        scrollbar = self.horizontalScrollBar().sizeHint().height()  # when the columns are wider than the view
        hint.setHeight(self.horizontalHeader().sizeHint().height() + rows + scrollbar + 2 * self.frameWidth())
        return hint


class AccountPage(QScrollArea):
    buyRequested = Signal(object)  # Pack
    loadOlderRequested = Signal()
    receiptRequested = Signal(str)  # the order id of a paid purchase in the history

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # a Tab stop that shows no focus and does nothing: skipped
        self.setFrameShape(QFrame.Shape.NoFrame)
        body = QWidget()
        body.setObjectName("accountBody")
        self.setWidget(body)

        caption = QLabel("Balance")
        self.balance = QLabel("—")
        self.balance.setObjectName("balance")
        self.balance.setAccessibleName("Credit balance")
        font = self.balance.font()
        font.setPointSizeF(font.pointSizeF() * 3)
        font.setBold(True)
        self.balance.setFont(font)
        self.reserved = QLabel()  # what open holds set aside: "40 reserved", hidden when nothing is
        self.reserved.setObjectName("reserved")
        self.reserved.setAccessibleName("Credits reserved")
        self.reserved.setToolTip("Set aside by operations still running: spent when they finish, or given back.")
        self.reserved.hide()
        self.zone: QTimeZone | None = None  # the zone an expiry is said in; None: this computer's
        self.grants = QLabel()  # "12 promotional · 9 expire at the end of 13 Dec", hidden when there is nothing to say
        self.grants.setObjectName("grants")
        self.grants.setAccessibleName("Promotional credits and expiry")
        self.grants.setToolTip("Promotional credits are spent before paid ones, those that expire soonest first.")
        self.grants.hide()
        self.stale = QLabel()
        self.stale.setObjectName("staleNote")
        self.stale.setWordWrap(True)
        self.stale.setStyleSheet("color: #b42318;")
        self.stale.hide()
        self.account = QLabel()
        self.account.setObjectName("accountEmail")
        self.keyring_note = QLabel()
        self.keyring_note.setObjectName("keyringNote")
        self.keyring_note.setWordWrap(True)
        self.keyring_note.hide()
        self.notice = QLabel()
        self.notice.setObjectName("notice")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #15803d; font-weight: bold;")
        self.notice.setAccessibleName("News")
        self.notice.hide()
        top = QVBoxLayout()
        top.addWidget(caption)
        top.addWidget(self.balance)
        top.addWidget(self.reserved)
        top.addWidget(self.grants)
        top.addWidget(self.stale)
        top.addWidget(self.account)
        top.addWidget(self.keyring_note)
        top.addWidget(self.notice)

        self.purchases_box = QGroupBox("Purchases in progress")
        self.purchases_layout = QVBoxLayout(self.purchases_box)
        self.purchases_layout.setSpacing(8)
        self.purchases_box.hide()
        self.panels: list[PurchasePanel] = []

        self.packs_box = QGroupBox("Buy credits")
        self.packs_layout = QHBoxLayout(self.packs_box)
        self.packs_layout.setSpacing(12)
        self.cards: list[PackCard] = []

        history_box = QGroupBox("History")
        self.model = HistoryModel()
        self.table = HistoryTable()
        self.table.setModel(self.model)
        self.table.setAccessibleName("Transaction history")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table; arrows move within it
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        # Widths from the font, set once: sizing to contents would measure every cell on each refresh, on the
        # GUI thread. The user can still drag them; the description takes the rest.
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        metrics = self.table.fontMetrics()
        samples = ("Adjustment", "+1,000,000", "Balance after", "12/31/2026 12:59 PM CEST")
        for column, sample in enumerate(samples):
            self.table.setColumnWidth(column, metrics.horizontalAdvance(sample) + 24)
        self.empty = QLabel("No transactions yet. Buy a pack to get started.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.load_older = QPushButton("Load &older transactions")
        self.load_older.setAccessibleName("Load older transactions")
        self.load_older.clicked.connect(self.loadOlderRequested.emit)
        self.load_older.hide()
        self.receipt_button = QPushButton("Open &receipt")
        self.receipt_button.setToolTip("The receipt of the purchase selected above, in your browser")
        self.receipt_button.setEnabled(False)
        self.receipt_button.clicked.connect(self._request_receipt)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        self.table.activated.connect(lambda _index: self._request_receipt())  # Enter or a double click
        # Open receipt above the rows, where it is in view with the newest purchase at the default size (below the
        # table it needed scrolling once a finished purchase's panel was shown); older rows are fetched below them.
        receipt_row = QHBoxLayout()
        receipt_row.addWidget(self.receipt_button)
        receipt_row.addStretch()
        older_row = QHBoxLayout()
        older_row.addStretch()
        older_row.addWidget(self.load_older)
        history_layout = QVBoxLayout(history_box)
        history_layout.addLayout(receipt_row)
        history_layout.addWidget(self.table)
        history_layout.addWidget(self.empty)
        history_layout.addLayout(older_row)

        layout = QVBoxLayout(body)
        layout.setContentsMargins(18, 14, 18, 12)
        layout.setSpacing(12)
        layout.addLayout(top)
        layout.addWidget(self.purchases_box)
        layout.addWidget(self.packs_box)
        layout.addWidget(history_box, stretch=1)
        self.set_history([], False)

    def selected_purchase(self) -> str | None:
        """The order id of the selected row, when it is a purchase (whose receipt can be opened)."""
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        row = self.model.rows[rows[0].row()]
        return row.order_id if row.type == "purchase" and row.order_id else None

    def _selection_changed(self) -> None:
        self.receipt_button.setEnabled(self.selected_purchase() is not None)

    def _request_receipt(self) -> None:
        order_id = self.selected_purchase()
        if order_id is not None:
            self.receiptRequested.emit(order_id)

    def set_email(self, email: str, keyring_note: str = "") -> None:
        """``keyring_note`` says where the sign-in is kept when that is not the system keyring."""
        self.account.setText(f"Signed in as {email}")
        self.keyring_note.setText(keyring_note)
        self.keyring_note.setVisible(bool(keyring_note))

    def set_balance(self, balance: int | None) -> None:
        self.balance.setText("—" if balance is None else f"{formatting.number(balance)} credits")

    def set_grants(self, summary: GrantSummary | None) -> None:
        """Under the balance: its promotional credits and the next expiry in the user's zone, "12 promotional · 9
        expire at the end of 13 Dec" (an expiry at local midnight ends the day before), else its date and time."""
        text = summary.words(lambda iso: formatting.expiry(iso, zone=self.zone), formatting.number) \
            if summary is not None else ""
        self.grants.setText(text)
        self.grants.setVisible(bool(text))

    def set_reserved(self, reserved: int) -> None:
        """Credits open holds reserve, under the balance: "40 reserved" (the balance less them is what can be spent)."""
        self.reserved.setText(f"{formatting.number(reserved)} reserved" if reserved else "")
        self.reserved.setVisible(reserved > 0)

    def set_stale(self, message: str | None) -> None:
        """``message``: why the figures may be out of date (None: they are current)."""
        self.stale.setText(message or "")
        self.stale.setVisible(bool(message))
        self.balance.setStyleSheet(STALE_STYLE if message else "")
        self.table.setEnabled(True)

    def show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    def set_packs(self, packs: list[Pack]) -> None:
        for card in self.cards:
            card.deleteLater()
        self.cards = []
        while self.packs_layout.count():
            self.packs_layout.takeAt(0)
        values = pack_values(packs)
        for pack in packs:
            card = PackCard(pack, values.get(pack.id))
            card.buy.connect(self.buyRequested.emit)
            self.cards.append(card)
            self.packs_layout.addWidget(card, stretch=1)
        self.order_tabs()

    def set_buying_enabled(self, enabled: bool, why: str = "") -> None:
        for card in self.cards:
            card.button.setEnabled(enabled)
            card.button.setToolTip("" if enabled else why)

    def add_panel(self, panel: PurchasePanel) -> None:
        self.panels.append(panel)
        self.purchases_layout.addWidget(panel)
        self.purchases_box.show()
        panel.purchase.changed.connect(self.name_purchases)
        self.name_purchases()
        self.order_tabs()

    def name_purchases(self) -> None:
        """The purchases' heading says what they are: in progress, finished (until dismissed), or both."""
        ended = [panel.purchase.flow.is_terminal for panel in self.panels]
        self.purchases_box.setTitle("Finished purchases" if ended and all(ended) else
                                    "Purchases" if any(ended) else "Purchases in progress")

    def order_tabs(self) -> None:
        """Tab goes down the page as it is shown: the purchases in progress, the packs, the history. (Qt's own
        order is the order widgets were made in, and a purchase's panel is made after the packs.)"""
        stops: list[QWidget] = [button for panel in self.panels for button in panel.buttons()]
        stops += [card.button for card in self.cards]
        stops += [self.receipt_button, self.table, self.load_older]
        for first, second in itertools.pairwise(stops):
            QWidget.setTabOrder(first, second)

    def remove_panel(self, panel: PurchasePanel) -> None:
        if panel in self.panels:
            self.panels.remove(panel)
            self.purchases_layout.removeWidget(panel)
            panel.deleteLater()
        self.purchases_box.setVisible(bool(self.panels))
        self.name_purchases()

    def set_history(self, rows: list[Transaction], has_more: bool) -> None:
        self.model.set_rows(rows)
        self._selection_changed()
        self.table.setVisible(bool(rows))
        self.empty.setVisible(not rows)
        self.load_older.setVisible(has_more)
        self.load_older.setEnabled(True)
