"""Drives one purchase: loopback listener, checkout, the system browser, callback and polling.

The pure state machine is :class:`desktop.core.purchase.PurchaseFlow`; this class feeds it the
results of work done on workers and timers, and keeps the purchase on disk until it ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from desktop.core.api import ApiClient, ApiError, Pack, PaymentVerification
from desktop.core.callback import CallbackResult, LoopbackListener
from desktop.core.pending import PendingPurchase
from desktop.core.purchase import FlowState, PurchaseFlow
from desktop.qt.controller import AppController, describe
from desktop.qt.tasks import Task

log = logging.getLogger("desktop.purchase")

LISTENER_TIMEOUT_SECONDS = 3600  # the listener gives up after an hour; polling still finds the payment
# A purchase resumed at start-up is checked this many times, then left for the next start: its session may
# stay open (unpaid) for up to a day, and nobody is waiting on it.
RESUMED_MAX_CHECKS = 6
# When a purchase ends before the browser came back (a poll found the payment, or the user stopped waiting),
# the listener still answers the browser for this long, so that it shows our page and not an error.
LISTENER_GRACE_MS = 120_000

Opener = Callable[[str], bool]


class PurchaseController(QObject):
    changed = Signal()  # read .flow and .message
    callbackReceived = Signal()  # the browser came back: bring the app to the front
    finished = Signal(object)  # the PurchaseFlow, in a terminal state

    _callback = Signal(object)  # from the listener's thread to the GUI thread

    def __init__(self, controller: AppController, opener: Opener, *, first_delay: float = 2.0,
                 max_delay: float = 30.0, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.opener = opener
        self.flow = PurchaseFlow(first_delay=first_delay, max_delay=max_delay)
        self.pack_name = ""
        self.credits = 0
        self.browser_opened: bool | None = None
        self.max_checks: int | None = None
        self.api: ApiClient = controller.new_client()
        self.listener: LoopbackListener | None = None
        self._verify_task: Task | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._poll)
        self._callback.connect(self._on_callback, Qt.ConnectionType.QueuedConnection)

    # -- starting ---------------------------------------------------------------------------------------------

    def start(self, pack: Pack) -> None:
        """Open the listener, create the checkout and send the browser to it."""
        self.pack_name, self.credits = pack.name, pack.credits
        self.flow.begin(pack.id)
        listener = LoopbackListener(on_result=self._callback.emit, timeout_seconds=LISTENER_TIMEOUT_SECONDS)
        self.listener = listener
        api = self.api

        def create() -> Any:
            listener.start()
            return api.checkout(pack.id, listener.return_url, listener.state)

        def done(session: Any) -> None:
            if not self.flow.started(session.session_id, session.url):
                return
            log.info("purchase started: pack=%s session=%s", pack.id, session.session_id)
            self.controller.pending.add(PendingPurchase(
                backend_url=api.base_url, account_email=self.controller.account.email or "",
                session_id=session.session_id, pack_id=pack.id, pack_name=pack.name, credits=pack.credits,
                started_at=_now(), status="pending",
            ))
            self.open_checkout()
            self._step()

        def failed(error: BaseException) -> None:
            self.controller.run(listener.close)  # close() waits for the server thread: not on the GUI thread
            self.flow.start_failed(describe(error))
            self._step()

        self.controller.run(create, done, failed)
        self.changed.emit()

    def resume(self, purchase: PendingPurchase) -> None:
        """Finish checking a purchase left in flight by an earlier run (no browser, no listener)."""
        self.pack_name, self.credits = purchase.pack_name, purchase.credits
        self.max_checks = RESUMED_MAX_CHECKS
        self.flow.begin(purchase.pack_id)
        self.flow.started(purchase.session_id, "")
        self.flow.poll()
        self._step()

    # -- user actions -----------------------------------------------------------------------------------------

    def open_checkout(self) -> bool:
        """Open (again) the checkout page in the system browser."""
        url = self.flow.checkout_url
        if not url or self.flow.is_terminal:
            return False
        try:
            self.browser_opened = bool(self.opener(url))
        except Exception as exc:
            log.warning("the browser could not be opened: %s", exc)
            self.browser_opened = False
        if not self.browser_opened:
            log.warning("the system browser did not open the checkout page")
        self.changed.emit()
        return self.browser_opened

    def check_now(self) -> None:
        if self.flow.poll():
            self._step()

    def give_up(self) -> None:
        """Stop waiting. The purchase stays remembered: the next start checks it again."""
        if self._verify_task is not None:
            self._verify_task.cancel()
            self._verify_task = None
        if self.flow.give_up():
            self._step()

    # -- the flow ---------------------------------------------------------------------------------------------

    @Slot(object)
    def _on_callback(self, result: CallbackResult) -> None:
        log.info("checkout callback: status=%s", result.status)
        if self.flow.callback(result):
            self.callbackReceived.emit()
            self._step()

    def _poll(self) -> None:
        if self.flow.poll():
            self._step()

    def _step(self) -> None:
        state = self.flow.state
        if state is FlowState.WAITING and self.max_checks is not None and self.flow.polls >= self.max_checks:
            self.flow.give_up()
            state = self.flow.state
        if state is FlowState.WAITING:
            self._timer.start(int(self.flow.next_poll_delay() * 1000))
        elif state is FlowState.VERIFYING:
            self._timer.stop()
            self._verify()
        elif self.flow.is_terminal:
            self._finish()
        self.changed.emit()

    def _verify(self) -> None:
        if self._verify_task is not None:
            return
        session_id = self.flow.session_id or ""
        api = self.api

        def done(result: PaymentVerification) -> None:
            self._verify_task = None
            if result.status != self.flow.payment_status:
                self.controller.pending.update_status(session_id, result.status, finished=False)
            self.flow.verified(result.status, result.credits_granted, result.balance)
            self._step()

        def failed(error: BaseException) -> None:
            self._verify_task = None
            fatal = isinstance(error, ApiError) and error.status in (401, 404)
            retry_after = error.retry_after if isinstance(error, ApiError) else None
            self.flow.verify_failed(describe(error), fatal=fatal, retry_after=retry_after)
            self._step()

        self._verify_task = self.controller.run(lambda: api.verify_payment(session_id), done, failed)

    def _finish(self) -> None:
        self._timer.stop()
        listener = self.listener
        if listener is not None and not listener.closed:
            delay = LISTENER_GRACE_MS if self.flow.callback_status is None else 0
            QTimer.singleShot(delay, self, lambda: self.controller.run(listener.close))
        flow = self.flow
        if flow.session_id and flow.state is not FlowState.GAVE_UP:
            self.controller.pending.update_status(flow.session_id, flow.payment_status or flow.state.value,
                                                  finished=True)
        log.info("purchase ended: session=%s state=%s", flow.session_id, flow.state.value)
        if flow.state is FlowState.PAID and flow.balance is not None:
            self.controller.set_balance(flow.balance)
        self.controller.refresh()
        self.api.close()
        self.finished.emit(flow)

    def close_listener(self) -> None:
        """At exit: stop answering the browser (blocks briefly)."""
        if self.listener is not None:
            self.listener.close()

    # -- for the dialog -----------------------------------------------------------------------------------------

    @property
    def message(self) -> str:
        flow = self.flow
        state = flow.state
        if state is FlowState.STARTING:
            return "Preparing the checkout…"
        if state in (FlowState.WAITING, FlowState.VERIFYING):
            if flow.payment_status == "cancelled":
                return "The checkout was left without paying. You can open it again or stop waiting."
            if self.browser_opened is False:
                return ("Your browser did not open. Use “Open checkout again”, or copy the link below into a "
                        "browser, and pay there.")
            if flow.verify_failures and flow.error:
                return f"{flow.error} Trying again shortly."
            return "Complete the payment in your browser. This window updates by itself when it is done."
        if state is FlowState.PAID:
            balance = f" Your balance is now {flow.balance:,}." if flow.balance is not None else ""
            return f"Payment received: {flow.credits_granted:,} credits were added.{balance}"
        if state is FlowState.CANCELLED:
            return "The checkout was cancelled. Nothing was charged."
        if state is FlowState.GAVE_UP:
            return ("Stopped waiting. If you complete the payment later, the credits are added and Creditdesk "
                    "checks it again the next time it starts.")
        return flow.error or "The purchase did not complete."


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
