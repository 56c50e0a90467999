"""Auto top-up (issue 19): opt in or out, the threshold, the pack, the monthly limit, the top-ups a day, notify-only;
what will be charged said plainly; the status (and why it turned itself off); Undo of the latest top-up.

Every call goes through :class:`~desktop.qt.spend_controller.SpendController` on a worker; the words are
:mod:`desktop.core.auto_topup`'s."""

from __future__ import annotations

from decimal import Decimal

from PySide6.QtCore import QSize, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.core.auto_topup import AutoTopupState, UndoResult, plan, status_text
from desktop.core.models import Pack
from desktop.qt import formatting, screen_fit
from desktop.qt.spend_controller import SpendController
from resources import currencies

MAX_CREDITS = 1_000_000_000


class AutoTopupDialog(QDialog):
    """``buyRequested(pack, save_card)``: the first top-up, a normal purchase that saves the card."""

    buyRequested = Signal(object, bool)

    def __init__(self, spending: SpendController, packs: list[Pack], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spending = spending
        self.packs = packs
        self.state: AutoTopupState | None = None
        self.setWindowTitle("Auto top-up")
        self.setObjectName("autoTopupDialog")

        intro = QLabel("Buy credits automatically when your balance runs low, within limits you set. Turning it "
                       "off takes one click, and only you can turn it on again.")
        intro.setWordWrap(True)
        self.status = QLabel("Loading…")
        self.status.setObjectName("autoTopupStatus")
        self.status.setWordWrap(True)

        self.threshold = QSpinBox()
        self.threshold.setRange(1, MAX_CREDITS)
        self.threshold.setGroupSeparatorShown(True)
        self.threshold.setSuffix(" credits")
        self.threshold.setValue(100)
        self.pack = QComboBox()
        for pack in packs:
            price = formatting.money(pack.amount, pack.currency)
            self.pack.addItem(f"{pack.name}: {pack.credits:,} credits for {price}", pack.id)
        self.monthly_limit = QDoubleSpinBox()
        self.monthly_limit.setRange(0.01, 1_000_000)
        self.monthly_limit.setGroupSeparatorShown(True)
        self.per_day = QSpinBox()
        self.per_day.setRange(1, 24)
        self.per_day.setValue(3)
        self.per_day.setSuffix(" a day at most")
        self.notify_only = QCheckBox("&Notify only: tell me and offer Buy, charge nothing")
        form = QFormLayout()
        form.addRow("When the balance falls &below", self.threshold)
        form.addRow("Bu&y this pack", self.pack)
        form.addRow("&Monthly limit", self.monthly_limit)
        form.addRow("&Top-ups", self.per_day)
        form.addRow(self.notify_only)
        for widget, label in ((self.threshold, "threshold"), (self.pack, "pack"), (self.monthly_limit, "limit"),
                              (self.per_day, "per day")):
            widget.setObjectName(f"autoTopup-{label.replace(' ', '-')}")
        self.plan = QLabel()
        self.plan.setObjectName("autoTopupPlan")
        self.plan.setWordWrap(True)

        self.latest = QLabel()
        self.latest.setObjectName("autoTopupLatest")
        self.latest.setWordWrap(True)
        self.undo_button = QPushButton("&Undo this top-up")
        self.undo_button.setObjectName("undoTopup")
        self.undo_button.hide()
        self.undo_button.clicked.connect(self.undo)

        self.buttons = QDialogButtonBox()
        self.on_button = self.buttons.addButton("Turn &on", QDialogButtonBox.ButtonRole.AcceptRole)
        self.off_button = self.buttons.addButton("Turn o&ff", QDialogButtonBox.ButtonRole.DestructiveRole)
        self.buy_button = self.buttons.addButton("Buy and &save card…", QDialogButtonBox.ButtonRole.ActionRole)
        close = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.setText("Close")
        self.on_button.clicked.connect(self.turn_on)
        self.off_button.clicked.connect(self.turn_off)
        self.buy_button.clicked.connect(self._buy)
        close.clicked.connect(self.close)

        settings = QWidget()
        content = QVBoxLayout(settings)
        content.setContentsMargins(0, 0, 0, 0)
        content.addWidget(intro)
        content.addLayout(form)
        content.addWidget(self.plan)
        content.addWidget(self.latest)
        content.addWidget(self.undo_button)
        content.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(screen_fit.scrolling(settings, "autoTopupScroll"), 1)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        # Tall enough for the most it says (the latest top-up with Undo, a two-line reason it is off), not more: at
        # 520 the status and buttons stood under a gap of a third of the dialog.
        screen_fit.keep_on_screen(self, QSize(620, 440))

        for signal in (self.threshold.valueChanged, self.monthly_limit.valueChanged, self.per_day.valueChanged,
                       self.pack.currentIndexChanged, self.notify_only.toggled):
            signal.connect(self._explain)
        self.pack.currentIndexChanged.connect(self._pack_changed)
        spending.autoTopupChanged.connect(self.show_state)
        spending.autoTopupFailed.connect(self._failed)
        spending.undone.connect(self._undone)
        self._pack_changed()
        self.refresh()

    # -- what the backend says -------------------------------------------------------------------------------------

    def refresh(self) -> None:
        self.spending.load_auto_topup()

    def show_state(self, state: AutoTopupState) -> None:
        self.state = state
        if state.threshold is not None:
            self.threshold.setValue(state.threshold)
            index = self.pack.findData(state.pack_id)
            if index >= 0:
                self.pack.setCurrentIndex(index)
            if state.monthly_limit is not None and state.currency:
                self.monthly_limit.setValue(float(currencies.value(state.monthly_limit, state.currency)))
            self.per_day.setValue(state.max_per_day)
            self.notify_only.setChecked(state.notify_only)
        self.status.setText(status_text(state, formatting.money))
        self.off_button.setEnabled(state.enabled)
        # Once it is on, the same button saves what was changed: "Turn on" would read as if it were off.
        self.on_button.setText("&Apply changes" if state.enabled else "Turn &on")
        latest = state.topups[0] if state.topups else None
        undoable = state.undoable
        if latest is None:
            self.latest.setText("No top-ups yet.")
        else:
            what = {"succeeded": "bought", "failed": "could not buy", "notified": "told you about",
                    "undone": "was undone: it bought", "in_flight": "is buying", "undoing": "is undoing"}
            price = formatting.money(latest.amount, latest.currency)
            done = what.get(latest.status, latest.status)
            self.latest.setText(f"Latest: auto top-up {done} the {latest.pack_name} pack ({latest.credits:,} credits, "
                                f"{price}), {formatting.timestamp(latest.created_at)}.")
        self.undo_button.setVisible(undoable is not None)
        if undoable is not None:
            until = formatting.timestamp(undoable.undo_until) if undoable.undo_until else "24 hours after it"
            self.undo_button.setToolTip(f"Refunds what you have not spent of it; offered until {until}")
        self._explain()

    def _failed(self, message: str) -> None:
        self.status.setText(message)

    def _undone(self, result: UndoResult) -> None:
        self.status.setText(f"Top-up undone: {result.credits:,} credits taken back and "
                            f"{formatting.money(result.refunded, result.currency)} refunded to your card.")

    # -- the user's choices ------------------------------------------------------------------------------------

    def _chosen_pack(self) -> Pack | None:
        pack_id = self.pack.currentData()
        return next((p for p in self.packs if p.id == pack_id), None)

    def _pack_changed(self) -> None:
        pack = self._chosen_pack()
        if pack is None:
            return
        places = currencies.exponent(pack.currency)
        self.monthly_limit.setDecimals(places)
        self.monthly_limit.setPrefix(f"{pack.currency.upper()} ")
        if self.state is None or self.state.monthly_limit is None:
            self.monthly_limit.setValue(float(currencies.value(pack.amount * 3, pack.currency)))

    def _limit_minor(self, pack: Pack) -> int:
        shown = Decimal(f"{self.monthly_limit.value():.{currencies.exponent(pack.currency)}f}")
        return int(shown.scaleb(currencies.exponent(pack.currency)))

    def _explain(self) -> None:
        pack = self._chosen_pack()
        if pack is None:
            self.plan.setText("There is no pack to buy.")
            self.on_button.setEnabled(False)
            return
        card_saved = bool(self.state and self.state.card_saved)
        self.plan.setText(plan(threshold=self.threshold.value(), pack_name=pack.name, credits=pack.credits,
                               price=pack.amount, currency=pack.currency, monthly_limit=self._limit_minor(pack),
                               max_per_day=self.per_day.value(), notify_only=self.notify_only.isChecked(),
                               card_saved=card_saved, money=formatting.money))
        # After a decline the saved card is the problem: the fix the status names is buying with a card saved again.
        card_refused = bool(self.state and not self.state.enabled and self.state.disabled_reason)
        self.buy_button.setVisible((not card_saved or card_refused) and not self.notify_only.isChecked())
        self.on_button.setEnabled(self.state is not None)

    def changes(self) -> dict[str, object]:
        pack = self._chosen_pack()
        assert pack is not None
        return {"enabled": True, "threshold": self.threshold.value(), "packId": pack.id,
                "monthlyLimit": self._limit_minor(pack), "maxPerDay": self.per_day.value(),
                "notifyOnly": self.notify_only.isChecked()}

    def turn_on(self) -> None:
        self.status.setText("Saving…")
        self.spending.save_auto_topup(self.changes())

    def turn_off(self) -> None:
        self.status.setText("Turning auto top-up off…")
        self.spending.save_auto_topup({"enabled": False})

    def _buy(self) -> None:
        """Turn it on, then buy the pack once with the card saved: the first top-up."""
        pack = self._chosen_pack()
        if pack is None:
            return
        self.turn_on()
        self.buyRequested.emit(pack, True)

    def undo(self) -> None:
        topup = self.state.undoable if self.state else None
        if topup is not None:
            self.status.setText("Undoing the top-up…")
            self.spending.undo_topup(topup.id)
