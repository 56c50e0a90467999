"""What the backend says about buying and the signed-in account: the packs on sale, the balance and the history
(a page at a time, newest first), refreshed every :data:`REFRESH_INTERVAL_MS` and when asked.

The calls run on workers; this object keeps the answers and tells the windows. While the backend does not answer
these are the figures of ``updated_at``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.core.models import ApiError, BackendUnreachable
from desktop.qt.account_session import AccountSession
from desktop.qt.backend_connection import BackendConnection
from desktop.qt.workers import Workers, describe

if TYPE_CHECKING:
    from desktop.core.models import GrantSummary, HeldCredits, Pack, Transaction

log = logging.getLogger("desktop.controller")

REFRESH_INTERVAL_MS = 30_000
HISTORY_PAGE = 50


def merge_newest(history: list[Transaction], cursor: str | None, newest: list[Transaction],
                 newest_cursor: str | None) -> tuple[list[Transaction], str | None, list[Transaction]]:
    """The history with the newest page merged in, its cursor, and the rows that page brought. New rows go on
    top and older pages already loaded stay; the first page, or more new rows than a page holds, starts the
    history again from the newest."""
    known = {t.id for t in history}
    new = [t for t in newest if t.id not in known]
    if not history or (len(new) == len(newest) and newest_cursor is not None):
        return newest, newest_cursor, new
    return new + history, cursor, new


class AccountFigures(QObject):
    balanceChanged = Signal(int)
    grantsChanged = Signal(object)  # GrantSummary, or None (signed out, or a backend older than grants)
    reservedChanged = Signal(int)  # credits open holds reserve (0: none, or a backend older than holds)
    packsChanged = Signal(list)
    historyChanged = Signal(list, bool)  # all rows, whether older rows exist
    historyGrew = Signal(list)  # rows a refresh found (not at the first load): before historyChanged

    def __init__(self, workers: Workers, backend: BackendConnection, session: AccountSession,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.workers = workers
        self.backend = backend
        self.session = session
        self.packs: list[Pack] = []
        self.balance: int | None = None
        self.reserved = 0
        self.history: list[Transaction] = []
        self.next_cursor: str | None = None
        self.updated_at: datetime | None = None  # when balance and history last came from the backend
        self._refreshing = False
        self._refresh_again = False
        self._balance_version = 0  # counts set_balance calls: a refresh's older answer does not undo a newer one
        self._history_loading = False
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_INTERVAL_MS)
        self._timer.timeout.connect(self.refresh)
        backend.answered.connect(self._backend_answered)
        session.began.connect(self._began)
        session.ended.connect(self._forget_account)

    def stop(self) -> None:
        """The app is closing: no more refreshes."""
        self._timer.stop()

    def _backend_answered(self, first: bool) -> None:
        if first or not self.packs:
            self.load_packs()
        if first:
            self._timer.start()
        elif self.session.signed_in:
            self.refresh()

    def _began(self, _email: str, balance: int | None) -> None:
        self._forget_account()
        if balance is not None:
            self.set_balance(balance)
        self.refresh()

    def _forget_account(self) -> None:
        self.balance, self.history, self.next_cursor, self.updated_at = None, [], None, None
        self._set_reserved(0)
        self.grantsChanged.emit(None)

    def load_packs(self) -> None:
        api = self.backend.require_api()

        def done(packs: list[Pack]) -> None:
            self.packs = packs
            self.packsChanged.emit(packs)

        self.workers.run(api.packs, done, self._failed)

    def refresh(self) -> None:
        """Health, balance and the newest page of history. Older pages already loaded stay, and new rows go on
        top. Asked while a refresh is under way (which may have read the balance before a payment), another one
        follows it."""
        if self.backend.api is None:
            return
        self.backend.check_health()
        if not self.session.signed_in:
            return
        if self._refreshing:
            self._refresh_again = True
            return
        api = self.backend.api
        self._refreshing, self._refresh_again = True, False
        balance_version, generation = self._balance_version, self.session.generation

        def fetch() -> tuple[tuple[int, GrantSummary | None], Any, HeldCredits | None]:
            return api.credits(), api.transactions(limit=HISTORY_PAGE), api.held_credits()

        def settle() -> None:
            self._refreshing = False
            if self._refresh_again:
                self.refresh()

        def done(result: tuple[tuple[int, GrantSummary | None], Any, HeldCredits | None]) -> None:
            if self.session.signed_in and self.session.generation == generation:  # not an earlier sign-in's
                (balance, grants), page, held = result
                if self._balance_version == balance_version:  # not older than a balance set meanwhile
                    self.set_balance(balance)
                self.grantsChanged.emit(grants)
                self._set_reserved(held.reserved if held is not None else 0)
                self._merge_history(list(page.items), page.next_cursor)
                self.updated_at = datetime.now(UTC)
            settle()

        def failed(error: BaseException) -> None:
            self._failed(error, generation)
            settle()

        self.workers.run(fetch, done, failed)

    def _merge_history(self, newest: list[Transaction], cursor: str | None) -> None:
        first_load = self.updated_at is None and not self.history
        self.history, self.next_cursor, new = merge_newest(self.history, self.next_cursor, newest, cursor)
        if not first_load:
            self.historyGrew.emit(new)
        self.historyChanged.emit(self.history, self.next_cursor is not None)

    def load_older(self) -> None:
        if self.backend.api is None or not self.next_cursor or self._history_loading:
            return
        api, cursor, generation = self.backend.api, self.next_cursor, self.session.generation
        self._history_loading = True

        def done(page: Any) -> None:
            self._history_loading = False
            if self.session.generation != generation:
                return  # signed out (or in as another account) meanwhile
            known = {t.id for t in self.history}
            self.history = self.history + [t for t in page.items if t.id not in known]
            self.next_cursor = page.next_cursor
            self.historyChanged.emit(self.history, page.next_cursor is not None)

        def failed(error: BaseException) -> None:
            self._history_loading = False
            self._failed(error, generation)

        self.workers.run(lambda: api.transactions(limit=HISTORY_PAGE, before=cursor), done, failed)

    def set_balance(self, balance: int) -> None:
        self._balance_version += 1
        self.balance = balance
        self.balanceChanged.emit(balance)

    def _set_reserved(self, reserved: int) -> None:
        if reserved != self.reserved:
            self.reserved = reserved
            self.reservedChanged.emit(reserved)

    def _failed(self, error: BaseException, generation: int | None = None) -> None:
        """``generation``: the sign-in the call was made under (a 401 to an earlier one ends nothing)."""
        if isinstance(error, ApiError) and error.status == 401:
            if self.session.signed_in and generation in (None, self.session.generation):
                self.session.session_ended(generation)
            return
        if isinstance(error, BackendUnreachable):
            self.backend.unreachable(describe(error))
        self.workers.report(error)
