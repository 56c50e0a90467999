"""The app's purchases: :class:`PurchaseController` drives one (loopback listener, checkout, the system browser,
hand-off hints, polling, cancelling); :class:`Purchases` holds those the app follows or shows, starts new ones,
picks up the ones an earlier run left in flight, and tells of a payment that landed with none following it.

The pure state machine is :class:`desktop.core.purchase.PurchaseFlow`; a controller feeds it the results of work
done on workers and timers, and keeps the purchase (with its timeline) on disk until it ends. Several purchases
may be in flight at once, each with its own controller, and the rest of the app keeps working meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from desktop.core.models import (
    ApiError,
    BackendUnreachable,
    CallbackResult,
    CancelResult,
    Pack,
    PaymentVerification,
    Price,
)
from desktop.core.purchase import FlowState, PurchaseFlow
from desktop.core.purchase_records import BROWSER_FAILED, BROWSER_OPENED, CREATED, RETURNED, PurchaseRecord, utcnow_iso
from desktop.core.statuses import OrderStatus
from desktop.qt.account_figures import AccountFigures
from desktop.qt.account_session import AccountSession
from desktop.qt.backend_connection import BackendConnection
from desktop.qt.tasks import Task
from desktop.qt.workers import Workers, describe

if TYPE_CHECKING:
    from desktop.core.callback import LoopbackListener
    from desktop.core.models import Transaction
    from desktop.core.purchase_records import PurchaseRecords

log = logging.getLogger("desktop.purchase")

# Opens a URL in the system browser, the words saying what it is ("the receipt": for the log); False when it could not.
Opener = Callable[[str, str], bool]

# Checkout Sessions live 24 hours: Stripe's default, and the stub's; the backend sets no other expiry.
CHECKOUT_LIFETIME = timedelta(hours=24)

# What a backend status means for someone waiting on it.
STATUS_WORDS: dict[str, str] = {
    OrderStatus.PENDING: "not paid yet", OrderStatus.PAID: "paid", OrderStatus.CANCELLED: "cancelled",
    OrderStatus.EXPIRED: "expired", OrderStatus.FAILED: "the payment failed",
    OrderStatus.REFUNDED: "refunded", OrderStatus.DISPUTED: "disputed",
    OrderStatus.CHARGED_BACK: "reversed by the bank",
}


def parse_time(iso: str | None) -> datetime | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None


class PurchaseController(QObject):
    changed = Signal()  # read .flow, .message, .last_learned
    answered = Signal(str)  # the answer to "Check now", as a sentence
    callbackReceived = Signal()  # the browser handed the result over: bring the app to the front
    finished = Signal(object)  # this controller, its flow in a terminal state

    _callback = Signal(object)  # from the listener's thread to the GUI thread

    def __init__(self, purchases: Purchases, *, first_delay: float = 2.0, max_delay: float = 30.0,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.workers, self.backend, self.session = purchases.workers, purchases.backend, purchases.session
        self.figures, self.opener = purchases.figures, purchases.opener
        self.purchase_records = purchases.purchase_records
        self.flow = PurchaseFlow(first_delay=first_delay, max_delay=max_delay)
        self.pack_name = ""
        self.credits = 0
        self.amount: int | None = None
        self.tax_words = ""  # "+ tax" / "incl. tax" beside the price until what was paid is known (pack_values)
        self.currency: str | None = None
        self.paid: Price | None = None  # what was paid (with its tax, less its discount), once the backend said
        self.order_id: str | None = None
        self.email = purchases.session.email or ""
        self.started_at = datetime.now(UTC)
        self.browser_opened: bool | None = None
        self.resumed = False
        self.finished_at: datetime | None = None  # when its outcome came: what the panel says was true then
        self.last_learned: tuple[datetime, str] | None = None  # when, and what the app last learned
        self.listener: LoopbackListener | None = None  # the loopback server of a purchase started here
        self._verify_task: Task | None = None
        self._answer_wanted = False
        self._stopped = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._poll)
        self._expiry = QTimer(self)
        self._expiry.setSingleShot(True)
        self._expiry.timeout.connect(self.check_now)
        from PySide6.QtCore import Qt  # here, not when the module loads (before the first paint): see tasks.py

        self._callback.connect(self._on_callback, Qt.ConnectionType.QueuedConnection)

    def __repr__(self) -> str:
        return f"PurchaseController({self.pack_name!r}, {self.flow!r})"

    @property
    def session_id(self) -> str | None:
        return self.flow.session_id

    @property
    def expires_at(self) -> datetime:
        return self.started_at + CHECKOUT_LIFETIME

    def time_left(self, now: datetime | None = None) -> timedelta:
        return max(timedelta(0), self.expires_at - (now or datetime.now(UTC)))

    # -- starting ---------------------------------------------------------------------------------------------

    def start(self, pack: Pack, *, save_card: bool = False) -> None:
        """Open the listener, create the checkout and send the browser to it. ``save_card``: auto top-up's first
        top-up, whose Checkout saves the card for the top-ups that follow."""
        from desktop.core.callback import LoopbackListener
        from desktop.core.pack_values import tax_words

        self.pack_name, self.credits = pack.name, pack.credits
        self.amount, self.currency, self.tax_words = pack.amount, pack.currency, tax_words(pack)
        self.flow.begin(pack.id)
        listener = LoopbackListener(on_result=self._callback.emit,
                                    timeout_seconds=CHECKOUT_LIFETIME.total_seconds())
        self.listener = listener
        api = self.backend.require_api()  # (a purchase comes after the backend answered)

        def create() -> Any:
            listener.start()
            return api.checkout(pack.id, listener.return_url, listener.state, save_card=save_card)

        def done(session: Any) -> None:
            if not self.flow.started(session.session_id, session.url):
                return
            self.order_id = session.order_id
            self.started_at = datetime.now(UTC)
            log.info("purchase started: pack=%s session=%s order=%s", pack.id, session.session_id, session.order_id)
            record = PurchaseRecord(
                backend_url=api.base_url, backend_id=self.backend.identity.key, account_email=self.email,
                session_id=session.session_id, pack_id=pack.id, pack_name=pack.name, credits=pack.credits,
                started_at=_iso(self.started_at), status="pending", order_id=session.order_id,
                amount=pack.amount, currency=pack.currency, checkout_url=session.url,
                return_url=listener.return_url, state=listener.state, tax=pack.tax,
            ).with_event(CREATED, _iso(self.started_at))
            self.workers.write(lambda: self.purchase_records.add(record))
            self._arm_expiry()
            self.open_checkout()
            self._step()

        def failed(error: BaseException) -> None:
            self.workers.run(listener.close)  # close() waits for the server thread: not on the GUI thread
            message = describe(error)
            log.warning("a purchase could not start: pack=%s: %s", pack.id, message)
            self.flow.start_failed(message)
            if isinstance(error, BackendUnreachable):
                self.backend.unreachable(message)
            self._step()

        self.workers.run(create, done, failed)
        self.changed.emit()

    def resume(self, record: PurchaseRecord) -> None:
        """Carry on with a purchase left in flight by an earlier run: listen again where its checkout hands the
        result over (if that port is free), and check it at once; polling finds the payment in any case."""
        from desktop.core.pack_values import TAX_WORDS

        self.resumed = True
        self.pack_name, self.credits = record.pack_name, record.credits
        self.tax_words = TAX_WORDS.get(record.tax or "", "")  # "+ tax" as at checkout (none from older versions)
        self.amount, self.currency, self.order_id = record.amount, record.currency, record.order_id
        self.email = record.account_email
        self.started_at = parse_time(record.started_at) or datetime.now(UTC)
        checked = parse_time(record.last_checked_at)
        if checked is not None:
            self.last_learned = (checked, STATUS_WORDS.get(record.status, record.status))
        self.flow.pack_id = record.pack_id
        self.flow.resume(record.session_id, record.checkout_url, record.status)
        self._arm_expiry()
        self._listen_again(record)
        self._step()

    def _listen_again(self, record: PurchaseRecord) -> None:
        port = _port_of(record.return_url)
        if not port or not record.state or self.time_left().total_seconds() <= 0:
            return
        from desktop.core.callback import LoopbackListener

        listener = LoopbackListener(on_result=self._callback.emit, port=port, state=record.state,
                                    timeout_seconds=self.time_left().total_seconds())
        self.listener = listener

        def failed(error: BaseException) -> None:
            log.info("cannot listen again on port %s (%s); the purchase is checked by polling", port, error)
            if self.listener is listener:
                self.listener = None

        self.workers.run(listener.start, None, failed)

    def _arm_expiry(self) -> None:
        """Check once more right after the session expires: the backend then says so, and the panel too."""
        left = self.time_left().total_seconds()
        if left > 0:
            self._expiry.start(int(min(left + 5, 2**31 / 1000 - 1) * 1000))

    # -- user actions -----------------------------------------------------------------------------------------

    def open_checkout(self) -> None:
        """Open (again) the checkout page in the system browser (the opener runs on a worker: it may wait)."""
        url = self.flow.checkout_url
        if not url or self.flow.is_terminal:
            return
        opener, session_id = self.opener, self.flow.session_id or ""
        # When the browser was asked: the opener returns only once the browser's launcher has (seconds later, while
        # the page is already loading), and the timeline should say when the page was opened.
        asked_at = utcnow_iso()

        def done(opened: Any) -> None:
            self.browser_opened = bool(opened)
            if not self.browser_opened:
                log.warning("the system browser did not open the checkout page")
            event = BROWSER_OPENED if self.browser_opened else BROWSER_FAILED
            self.workers.write(lambda: self.purchase_records.record(session_id, event, at=asked_at))
            self.changed.emit()

        def failed(error: BaseException) -> None:
            log.warning("the browser could not be opened: %s", error)
            done(False)

        self.workers.run(lambda: opener(url, "the checkout page"), done, failed)

    def check_now(self) -> None:
        """Ask the backend now; the answer always comes, through ``answered``."""
        state = self.flow.state
        if state is FlowState.PAUSED:
            self.answered.emit("Sign in again to check this purchase.")
            return
        if state is FlowState.CANCELLING:
            self.answered.emit("Cancelling the checkout…")
            return
        if self.flow.is_terminal or state in (FlowState.IDLE, FlowState.STARTING):
            self.answered.emit(self.message)
            return
        self._answer_wanted = True
        if self.flow.poll():
            self._step()
        # else a verify is running: its answer is the answer

    def cancel(self) -> None:
        """Cancel the purchase: the backend expires the checkout, so that it can no longer be paid."""
        if not self.flow.cancel():
            return
        if self._verify_task is not None:
            self._verify_task.cancel()
            self._verify_task = None
        self._timer.stop()
        session_id, api, generation = self.flow.session_id or "", self.backend.require_api(), self.session.generation

        def done(result: CancelResult) -> None:
            self._learned(result.status)
            self.workers.write(lambda: self.purchase_records.update_status(
                session_id, result.status, finished=False, checked_at=utcnow_iso()))
            self.flow.cancel_answered(result.status)
            self._step()

        def failed(error: BaseException) -> None:
            message = describe(error)
            signed_out = isinstance(error, ApiError) and error.status == 401
            retry_after = error.retry_after if isinstance(error, ApiError) else None
            self.flow.cancel_failed(f"The checkout could not be cancelled: {message}", signed_out=signed_out,
                                    retry_after=retry_after)
            self.answered.emit(f"The checkout could not be cancelled: {message}")
            if signed_out:
                self.session.session_ended(generation)
            elif isinstance(error, BackendUnreachable):
                self.backend.unreachable(message)
            self._step()

        self.workers.run(lambda: api.cancel(session_id), done, failed)
        self.changed.emit()

    def stop(self) -> None:
        """The app is closing (or another account signed in): stop checking; the purchase stays on disk and is
        picked up at the next start."""
        self._stopped = True
        self._timer.stop()
        self._expiry.stop()
        if self._verify_task is not None:
            self._verify_task.cancel()
            self._verify_task = None
        self.close_listener()

    def close_listener(self) -> None:
        """Stop answering the browser (blocks briefly: at exit, or on a worker)."""
        if self.listener is not None:
            self.listener.close()

    def signed_out(self) -> None:
        """The sign-in ended: stop asking until it is back (a 401 elsewhere, or the user signed out)."""
        self._timer.stop()
        if self._verify_task is not None:
            self._verify_task.cancel()
            self._verify_task = None
        if self.flow.state in (FlowState.WAITING, FlowState.VERIFYING):
            self.flow.verify_failed("Your sign-in has ended.", signed_out=True)
        self.changed.emit()

    def signed_in_again(self) -> None:
        if self.flow.signed_in_again():
            self._step()

    # -- the flow ---------------------------------------------------------------------------------------------

    @Slot(object)
    def _on_callback(self, result: CallbackResult) -> None:
        log.info("checkout hand-off from the browser: status=%s (a hint; confirming with the backend)",
                 result.status)
        if self._stopped or not self.flow.callback(result):
            return
        session_id = self.flow.session_id or ""
        self.workers.write(lambda: self.purchase_records.record(session_id, RETURNED, result.status))
        self.callbackReceived.emit()
        self._step()

    def _poll(self) -> None:
        if self.flow.poll():
            self._step()

    def _step(self) -> None:
        if self._stopped:
            return
        state = self.flow.state
        if state is FlowState.WAITING:
            self._timer.start(int(self.flow.next_poll_delay() * 1000))
        elif state is FlowState.VERIFYING:
            self._timer.stop()
            self._verify()
        elif state is FlowState.PAUSED:
            self._timer.stop()
        elif self.flow.is_terminal:
            self._finish()
        self.changed.emit()

    def _learned(self, status: str) -> None:
        self.last_learned = (datetime.now(UTC), STATUS_WORDS.get(status, status))

    def _verify(self) -> None:
        if self._verify_task is not None:
            return
        session_id = self.flow.session_id or ""
        api = self.backend.require_api()  # (a purchase comes after the backend answered)
        generation = self.session.generation

        def done(result: PaymentVerification) -> None:
            self._verify_task = None
            self.paid = result.payment or self.paid
            self._learned(result.status)
            checked = utcnow_iso()
            self.workers.write(lambda: self.purchase_records.update_status(
                session_id, result.status, finished=False, checked_at=checked))
            self.flow.verified(result.status, result.credits_granted, result.balance)
            self._answer()
            self._step()

        def failed(error: BaseException) -> None:
            self._verify_task = None
            message = describe(error)
            signed_out = isinstance(error, ApiError) and error.status == 401
            fatal = isinstance(error, ApiError) and error.status == 404
            retry_after = error.retry_after if isinstance(error, ApiError) else None
            self.last_learned = (datetime.now(UTC), f"no answer ({message.rstrip('.')})")
            self.flow.verify_failed(message, fatal=fatal, signed_out=signed_out, retry_after=retry_after)
            if signed_out:
                self.session.session_ended(generation)
            elif isinstance(error, BackendUnreachable):
                self.backend.unreachable(message)
            self._answer()
            self._step()

        self._verify_task = self.workers.run(lambda: api.verify_payment(session_id), done, failed)

    def _answer(self) -> None:
        if not self._answer_wanted:
            return
        self._answer_wanted = False
        _, what = self.last_learned or (datetime.now(UTC), "no answer")
        self.answered.emit(f"Checked just now: {what}.")

    def _finish(self) -> None:
        self.finished_at = datetime.now(UTC)
        self._timer.stop()
        self._expiry.stop()
        listener = self.listener
        if listener is not None and not listener.closed:
            self.workers.run(listener.close)
        flow = self.flow
        if flow.session_id:
            session_id, status = flow.session_id, flow.payment_status or flow.state.value
            self.workers.write(lambda: self.purchase_records.update_status(session_id, status, finished=True))
        log.info("purchase ended: session=%s state=%s", flow.session_id, flow.state.value)
        if flow.state is FlowState.PAID and flow.balance is not None:
            self.figures.set_balance(flow.balance)
        self.figures.refresh()
        self.finished.emit(self)

    # -- for the panel --------------------------------------------------------------------------------------------

    @property
    def message(self) -> str:
        flow = self.flow
        state = flow.state
        if state is FlowState.STARTING:
            return "Preparing the checkout…"
        if state is FlowState.CANCELLING:
            return "Cancelling the checkout…"
        if state is FlowState.PAUSED:
            return "Your sign-in has ended. Sign in again to keep checking this purchase; nothing is lost."
        if state in (FlowState.WAITING, FlowState.VERIFYING):
            if flow.verify_failures and flow.error:
                return f"{flow.error} Trying again shortly."
            if self.browser_opened is False:
                return ("Your browser did not open. Open the checkout again, or copy the link into a browser, and "
                        "pay there.")
            if self.resumed and self.browser_opened is None:
                return "Waiting for your payment: this purchase was started earlier and is not finished."
            if flow.error:  # a cancel that did not go through, say
                return flow.error
            return "Waiting for your payment in the browser. This updates by itself."
        if state is FlowState.PAID:
            # The balance was true when the payment came: the panel stays, and spends go on meanwhile.
            from desktop.qt import formatting  # (loaded after the window's first paint: decimal and all)

            when = f" at {formatting.clock(self.finished_at)}" if self.finished_at is not None else ""
            balance = f", for a balance of {flow.balance:,} then" if flow.balance is not None else ""
            return f"Payment received{when}: {flow.credits_granted:,} credits were added{balance}."
        return flow.error or "The purchase did not complete."


class Purchases(QObject):
    """The purchases the app follows or shows (``items``, until their panels are dismissed)."""

    purchaseAdded = Signal(object)  # PurchaseController
    paymentLanded = Signal(str)  # a payment found by the history, not by a purchase in flight: a sentence
    receiptFailed = Signal(str)  # a receipt could not be opened: why, as a sentence

    def __init__(self, workers: Workers, backend: BackendConnection, session: AccountSession,
                 figures: AccountFigures, purchase_records: PurchaseRecords, opener: Opener, *,
                 poll: tuple[float, float] = (2.0, 30.0), parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.workers = workers
        self.backend = backend
        self.session = session
        self.figures = figures
        self.purchase_records = purchase_records
        self.opener = opener
        self.poll = poll
        self.items: list[PurchaseController] = []
        self._announced: set[str] = set()  # sessions whose payment was already told
        session.began.connect(self._signed_in)
        session.ended.connect(self._signed_out)
        figures.historyGrew.connect(self._announce)

    def open_receipt(self, order_id: str) -> None:
        """Open a paid purchase's receipt in the browser: its link from the backend, then the opener (both on
        workers: they may wait). What went wrong is said through ``receiptFailed``."""
        api = self.backend.api
        if api is None or not self.session.signed_in:
            self.receiptFailed.emit("Sign in to open a receipt.")
            return
        opener = self.opener

        def find_and_open() -> bool | None:
            found = next((r for r in api.receipts() if r.order_id == order_id), None)
            return None if found is None else bool(opener(found.url, "the receipt"))

        def done(opened: Any) -> None:
            if opened is None:
                self.receiptFailed.emit("This purchase has no receipt yet: it is not paid.")
            elif not opened:
                self.receiptFailed.emit("The browser did not open the receipt.")

        def failed(error: BaseException) -> None:
            self.receiptFailed.emit(f"The receipt could not be opened: {describe(error)}")

        self.workers.run(find_and_open, done, failed)

    @property
    def can_buy(self) -> bool:
        return (self.backend.online and self.session.signed_in and self.backend.api is not None
                and self.backend.health.payments_available)

    def buy(self, pack: Pack, *, save_card: bool = False) -> PurchaseController | None:
        """Start a purchase (several may be in flight); ``save_card`` saves its card for auto top-up."""
        if not self.can_buy:
            return None
        purchase = self._new()
        purchase.start(pack, save_card=save_card)
        return purchase

    def dismiss(self, purchase: PurchaseController) -> None:
        """The user closed a finished purchase's panel."""
        if purchase in self.items and purchase.flow.is_terminal:
            self.items.remove(purchase)
            purchase.deleteLater()

    def in_flight(self) -> bool:
        """Whether a purchase is under way (an update waits for it to end)."""
        return any(purchase.flow.is_active for purchase in self.items)

    def stop(self) -> bool:
        """The app is closing: stop following them (they stay on disk). Whether any was still in flight."""
        in_flight = any(purchase.flow.is_active for purchase in self.items)
        for purchase in self.items:
            purchase.stop()
        return in_flight

    def _new(self) -> PurchaseController:
        first, cap = self.poll
        purchase = PurchaseController(self, first_delay=first, max_delay=cap, parent=self)
        purchase.finished.connect(self._finished)
        self.items.append(purchase)
        self.purchaseAdded.emit(purchase)
        return purchase

    def _finished(self, purchase: PurchaseController) -> None:
        if purchase.session_id and purchase.flow.payment_status == "paid":
            self._announced.add(purchase.session_id)

    def _signed_in(self, email: str, _balance: int | None) -> None:
        for purchase in [p for p in self.items if p.email.lower() != email.lower()]:
            purchase.stop()  # another account's purchases: they stay on disk for when it is back
            self.items.remove(purchase)
        for purchase in self.items:
            purchase.signed_in_again()
        self._resume_unfinished(email)

    def _signed_out(self) -> None:
        for purchase in self.items:
            purchase.signed_out()

    def _resume_unfinished(self, email: str) -> None:
        """Pick up this account's purchases that an earlier run (or sign-in) left in flight."""
        key = self.backend.identity.key

        def find() -> list[PurchaseRecord]:
            for name in self.session.legacy_names():  # purchases of earlier versions, filed under an old URL
                self.purchase_records.refile(name, key)
            return self.purchase_records.unfinished(key, email)

        def done(records: list[PurchaseRecord]) -> None:
            if self.session.email != email:
                return
            live = {p.session_id for p in self.items}
            for record in records:
                if record.session_id not in live:
                    log.info("resuming an unfinished purchase: session=%s", record.session_id)
                    self._new().resume(record)

        self.workers.disk.run(find, done, self.workers.report)

    def _announce(self, rows: list[Transaction]) -> None:
        """A payment that landed without a purchase in flight telling of it (paid after it was cancelled or
        expired here, or in another app) is announced, never silent; an auto top-up's alert tells of its own."""
        live = {p.session_id: p for p in self.items}
        for row in rows:
            # An auto top-up is announced once, by its own alert (the one that leads to its Undo), not here too.
            if row.type != "purchase" or row.auto_topup or not row.reference or row.reference in self._announced:
                continue
            self._announced.add(row.reference)
            purchase = live.get(row.reference)
            if purchase is not None and not purchase.flow.is_terminal:
                purchase.check_now()  # its own panel tells
                continue
            if purchase is not None and purchase.flow.payment_status == "paid":
                continue
            what = row.description or "a purchase"
            self.paymentLanded.emit(f"A payment went through: {row.amount:,} credits were added ({what}).")


def _port_of(url: str | None) -> int:
    try:
        return int(urlsplit(url or "").port or 0)
    except ValueError:
        return 0


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

