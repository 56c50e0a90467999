"""Spend controls, alerts and usage on the GUI thread: asks the backend on workers and tells the windows.

Alerts are polled while signed in (every :data:`ALERT_POLL_MS`, and soon after the balance changes); the ones
this device has not shown yet go out through :attr:`SpendController.notify` once the
:class:`~desktop.core.alert_inbox.AlertInbox` has noted them on disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, QTimeZone, Signal

from desktop.core.alert_inbox import AlertInbox
from desktop.core.models import SpendResult
from desktop.core.spend_models import Alert, AlertPage, SpendControls
from desktop.qt.controller import AppController
from desktop.qt.workers import describe

if TYPE_CHECKING:
    from desktop.core.api import ApiClient  # the HTTP stack: loaded once the window is up

log = logging.getLogger("desktop.spending")

ALERT_POLL_MS = 15_000
AFTER_CHANGE_MS = 600  # alerts are made with the change that causes them: look soon after one


def system_time_zone() -> str:
    """The IANA name of this computer's time zone (Qt maps Windows' own names to IANA ones)."""
    return bytes(QTimeZone.systemTimeZoneId().data()).decode() or "UTC"


class SpendController(QObject):
    controlsChanged = Signal(object)  # SpendControls
    controlsFailed = Signal(str)
    alertsChanged = Signal(object)  # AlertPage of unread alerts
    notify = Signal(list)  # alerts to show as notifications now, newest first
    mutedChanged = Signal(object)  # frozenset of kinds
    autoTopupChanged = Signal(object)  # AutoTopupState
    autoTopupFailed = Signal(str)
    undone = Signal(object)  # UndoResult
    usageChanged = Signal(object)  # Usage
    usageFailed = Signal(str)

    def __init__(self, app: AppController, inbox: AlertInbox | None = None, *,
                 poll_ms: int = ALERT_POLL_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.app = app
        self.inbox = inbox or AlertInbox.in_folder(app.paths.data_dir)
        self.controls: SpendControls | None = None
        self.unread: AlertPage | None = None
        self.muted: frozenset[str] = frozenset()
        self._polling = False
        self._stopped = False
        self._auto_topup_calls = 0  # auto top-up's reads and changes sent (see _auto_topup_call)
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self.poll_alerts)
        self._soon = QTimer(self)
        self._soon.setSingleShot(True)
        self._soon.setInterval(AFTER_CHANGE_MS)
        self._soon.timeout.connect(self.poll_alerts)
        app.session.signedIn.connect(self._signed_in)
        app.session.signedOut.connect(self._signed_out)
        app.figures.balanceChanged.connect(self._balance_changed)

    # -- session ------------------------------------------------------------------------------------------------

    @property
    def account_key(self) -> str:
        """Whose alerts these are: the account on this backend (the bundled backend is always the same one,
        whatever port it has this time)."""
        connection = self.app.backend
        backend = "bundled" if connection.bundled is not None else (connection.url or "")
        return f"{backend}|{(self.app.session.email or '').lower()}"

    def _balance_changed(self, _balance: int) -> None:
        if not self._stopped:
            self._soon.start()

    def _signed_in(self, _email: str) -> None:
        self.app.workers.run(self.inbox.muted, self._muted_loaded)
        self.load_controls(adopt_time_zone=True)
        self.poll_alerts()
        if not self._stopped:
            self._timer.start()

    def _signed_out(self, _reason: str) -> None:
        self._timer.stop()
        self._soon.stop()
        self.controls = None
        self.unread = None
        self.alertsChanged.emit(AlertPage((), None, 0))

    def stop(self) -> None:
        """The app is closing: no more polls (the ones under way finish with the app's other work)."""
        self._stopped = True
        self._timer.stop()
        self._soon.stop()

    def _api(self) -> ApiClient | None:
        return self.app.backend.api if self.app.session.signed_in and not self._stopped else None

    # -- controls -----------------------------------------------------------------------------------------------

    def load_controls(self, *, adopt_time_zone: bool = False) -> None:
        """Fetch the controls. At sign-in a time zone never chosen (still the backend's UTC) becomes this
        computer's, once, and shows in the history like any change."""
        api = self._api()
        if api is None:
            return
        here = system_time_zone()

        def fetch() -> SpendControls:
            controls = api.spend_controls()
            never_chosen = not any(change.field == "timeZone" for change in controls.history)
            if adopt_time_zone and never_chosen and controls.time_zone != here and here not in ("UTC", "Etc/UTC"):
                try:
                    return api.update_spend_controls({"timeZone": here})
                except Exception as exc:  # an unknown zone on this machine: keep the backend's
                    log.info("could not set the time zone %s: %s", here, exc)
            return controls

        self.app.workers.run(fetch, self._controls_loaded, self._controls_failed)

    def save_controls(self, changes: Mapping[str, Any], on_done: Callable[[SpendControls], None] | None = None,
                      on_error: Callable[[str], None] | None = None) -> None:
        api = self._api()
        if api is None:
            return

        def done(controls: SpendControls) -> None:
            self._controls_loaded(controls)
            if on_done:
                on_done(controls)

        def failed(error: BaseException) -> None:
            self._controls_failed(error)
            if on_error:
                on_error(describe(error))

        self.app.workers.run(lambda: api.update_spend_controls(changes), done, failed)

    def _controls_loaded(self, controls: SpendControls) -> None:
        self.controls = controls
        self.controlsChanged.emit(controls)

    def _controls_failed(self, error: BaseException) -> None:
        self.controlsFailed.emit(describe(error))

    # -- spending -----------------------------------------------------------------------------------------------

    def spend(self, amount: int, key: str, description: str, feature: str | None, token: str | None,
              on_done: Callable[[SpendResult], None], on_error: Callable[[BaseException], None]) -> None:
        api = self._api()
        if api is None:
            return

        def done(result: SpendResult) -> None:
            self.app.figures.set_balance(result.balance)
            self.app.figures.refresh()
            self.load_controls()  # what is used of each cap
            on_done(result)

        self.app.workers.run(lambda: api.spend(amount, key, description or None, feature=feature,
                                       confirmation_token=token), done, on_error)

    # -- alerts -------------------------------------------------------------------------------------------------

    def poll_alerts(self) -> None:
        """Fetch the unread alerts; note and announce the ones this device has not shown yet."""
        api = self._api()
        if api is None or self._polling:
            return
        self._polling = True
        key = self.account_key

        def fetch() -> tuple[AlertPage, list[Alert]]:
            page = api.alerts(unread=True, limit=100)
            return page, self.inbox.take_new(key, page.items)

        def done(result: tuple[AlertPage, list[Alert]]) -> None:
            self._polling = False
            page, new = result
            if not self.app.session.signed_in:
                return
            self.unread = page
            self.alertsChanged.emit(page)
            if new:
                self.notify.emit(new)

        def failed(error: BaseException) -> None:
            self._polling = False
            log.info("alerts not fetched: %s", describe(error))

        self.app.workers.run(fetch, done, failed)

    def mark_read(self, ids: Iterable[int] | None) -> None:
        api = self._api()
        if api is not None:
            chosen = None if ids is None else list(ids)
            self.app.workers.run(lambda: api.mark_alerts_read(chosen), lambda _: self.poll_alerts(), self._report)

    def send_test(self) -> None:
        api = self._api()
        if api is not None:
            self.app.workers.run(api.send_test_alert, lambda _: self.poll_alerts(), self._report)

    def all_alerts(self, on_done: Callable[[AlertPage], None], before: str | None = None) -> None:
        api = self._api()
        if api is not None:
            self.app.workers.run(lambda: api.alerts(limit=50, before=before), on_done, self._report)

    def set_muted(self, kinds: Iterable[str]) -> None:
        chosen = frozenset(kinds)
        self.app.workers.run(lambda: self.inbox.set_muted(chosen), self._muted_loaded, self._report)

    def _muted_loaded(self, kinds: frozenset[str]) -> None:
        self.muted = kinds
        self.mutedChanged.emit(kinds)

    def _report(self, error: BaseException) -> None:
        self.app.workers.errorOccurred.emit(describe(error))

    # -- auto top-up --------------------------------------------------------------------------------------------

    def load_auto_topup(self) -> None:
        api = self._api()
        if api is not None:
            self._auto_topup_call(api.auto_topup)

    def save_auto_topup(self, changes: Mapping[str, Any]) -> None:
        """``{"enabled": False}`` turns it off; the answer (or why not) comes as autoTopupChanged/Failed."""
        api = self._api()
        if api is not None:
            chosen = dict(changes)
            self._auto_topup_call(lambda: api.update_auto_topup(chosen))

    def _auto_topup_call(self, call: Callable[[], Any]) -> None:
        """Only the answer (or failure) of the newest read or change is shown: they run side by side on the workers,
        and a read sent before Turn off could answer after it and show auto top-up on again, or fail after it and
        say so under Turn off's answer."""
        self._auto_topup_calls += 1
        number = self._auto_topup_calls

        def answered(state: Any) -> None:
            if number == self._auto_topup_calls:
                self.autoTopupChanged.emit(state)

        def failed(error: BaseException) -> None:
            if number == self._auto_topup_calls:
                self.autoTopupFailed.emit(describe(error))

        self.app.workers.run(call, answered, failed)

    def undo_topup(self, topup_id: str) -> None:
        api = self._api()
        if api is None:
            return

        def done(result: Any) -> None:
            self.app.figures.set_balance(result.balance)
            self.app.figures.refresh()
            self.undone.emit(result)
            self.load_auto_topup()
            self._soon.start()

        self.app.workers.run(lambda: api.undo_topup(topup_id), done,
                             lambda error: self.autoTopupFailed.emit(describe(error)))

    # -- usage --------------------------------------------------------------------------------------------------

    def load_usage(self, granularity: str, first: date | None = None, last: date | None = None) -> None:
        api = self._api()
        if api is None:
            return
        self.app.workers.run(lambda: api.usage(granularity, first, last), self.usageChanged.emit,
                     lambda error: self.usageFailed.emit(describe(error)))

    def export_csv(self, path: Path, first: date | None, last: date | None, *,
                   progress: Callable[[int], None], cancelled: Callable[[], bool],
                   on_done: Callable[[int], None], on_error: Callable[[BaseException], None]) -> None:
        api = self._api()
        if api is None:
            return
        self.app.workers.run(lambda: api.download_transactions_csv(path, first, last, progress=progress,
                                                           cancelled=cancelled), on_done, on_error)
