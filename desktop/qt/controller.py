"""The app's state on the GUI thread: the backend, the signed-in account, balance, packs and history.

Every call to the backend runs through the :class:`TaskRunner`; this object only keeps the
results and tells the widgets through signals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.core.api import ApiClient, ApiClientError, ApiError, BackendUnreachable, Pack, Transaction
from desktop.core.bundled_backend import BundledBackend
from desktop.core.logs import RecentErrors
from desktop.core.pending import PendingPurchases
from desktop.core.settings import AppPaths, SettingsStore
from desktop.core.tokens import TokenStore
from desktop.qt.tasks import TaskRunner

log = logging.getLogger("desktop.controller")

REFRESH_INTERVAL_MS = 30_000
HISTORY_PAGE = 50


def describe(error: BaseException) -> str:
    """A sentence for the user; never a traceback."""
    if isinstance(error, ApiError) and error.status == 429:
        wait = f" in {error.retry_after} seconds" if error.retry_after else " in a moment"
        return f"Too many attempts. Please try again{wait}."
    if isinstance(error, ApiClientError):
        return str(error)
    log.error("unexpected error: %r", error)
    return "Something went wrong. Details are in the log (Help → Diagnostics)."


@dataclass
class Health:
    reachable: bool = False
    payments: str = ""
    version: str = ""
    message: str = "Connecting…"


@dataclass
class Account:
    email: str | None = None
    balance: int | None = None
    packs: list[Pack] = field(default_factory=list)
    history: list[Transaction] = field(default_factory=list)
    next_cursor: str | None = None


class AppController(QObject):
    backendReady = Signal(str)
    backendFailed = Signal(str)
    healthChanged = Signal(object)  # Health
    signedIn = Signal(str)
    signedOut = Signal(str)  # a reason to show, or ""
    authFailed = Signal(str, bool)  # message, whether the password was wrong
    balanceChanged = Signal(int)
    packsChanged = Signal(list)
    historyChanged = Signal(list, bool)  # all rows, whether older rows exist
    errorOccurred = Signal(str)

    def __init__(self, paths: AppPaths, *, backend_url: str | None, token_store: TokenStore | None = None,
                 recent_errors: RecentErrors | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.paths = paths
        self.backend_url = backend_url
        self.bundled: BundledBackend | None = None
        self.tokens = token_store or TokenStore()
        self.settings = SettingsStore(paths.settings_file)
        self.pending = PendingPurchases(paths.pending_file)
        self.recent_errors = recent_errors
        self.runner = TaskRunner(self)
        self.api: ApiClient | None = None
        self.health = Health()
        self.account = Account()
        self._refreshing = False
        self._history_loading = False
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_INTERVAL_MS)
        self._timer.timeout.connect(self.refresh)

    # -- start and stop ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect to the configured backend, or start the bundled one (on a worker)."""
        if self.backend_url:
            self._connect(self.backend_url)
            return
        self.bundled = BundledBackend(self.paths.data_dir, self.paths.log_dir)
        log.info("starting the bundled backend (stub payments mode)")
        self.runner.run(self.bundled.start, self._connect, self._bundled_failed)

    def _bundled_failed(self, error: BaseException) -> None:
        log.error("the bundled backend did not start: %s", error)
        self.backendFailed.emit(f"The built-in server did not start. {error}")

    def _connect(self, url: str) -> None:
        self.backend_url = url.rstrip("/")
        self.api = ApiClient(self.backend_url)
        log.info("backend at %s", self.backend_url)
        self.backendReady.emit(self.backend_url)
        self.check_health()
        self.load_packs()
        self._timer.start()
        self._restore_session()

    def shutdown(self) -> None:
        self._timer.stop()
        self.runner.wait_for_done(15_000)
        if self.api is not None:
            self.api.close()
        if self.bundled is not None:
            self.bundled.stop()

    # -- health, packs ------------------------------------------------------------------------------------------

    def check_health(self) -> None:
        api = self._require_api()

        def done(result: Any) -> None:
            self.health = Health(True, result.payments, result.version, "Connected")
            self.healthChanged.emit(self.health)

        def failed(error: BaseException) -> None:
            self.health = Health(False, self.health.payments, self.health.version, describe(error))
            self.healthChanged.emit(self.health)

        self.runner.run(lambda: api.health(timeout=5), done, failed)

    def load_packs(self) -> None:
        api = self._require_api()

        def done(packs: list[Pack]) -> None:
            self.account.packs = packs
            self.packsChanged.emit(packs)

        self.runner.run(api.packs, done, self._report)

    # -- accounts ----------------------------------------------------------------------------------------------

    @property
    def signed_in(self) -> bool:
        return self.account.email is not None

    def _restore_session(self) -> None:
        """Sign in again with the token kept for the last account, if it still works."""
        email = self.settings.load().last_email
        if not email:
            self.signedOut.emit("")
            return
        url = self.backend_url or ""

        def restore() -> tuple[str, int] | None:
            # The keyring can be slow (an IPC call, even an unlock prompt): off the GUI thread with the rest.
            token = self.tokens.load(url, email)
            if not token:
                return None
            probe = ApiClient(url, token)
            try:
                return token, probe.balance()
            finally:
                probe.close()

        def done(result: tuple[str, int] | None) -> None:
            if result is None:
                self.signedOut.emit("")
                return
            token, balance = result
            self._require_api().token = token
            self._signed_in(email, token, balance)

        def failed(error: BaseException) -> None:
            if isinstance(error, ApiError) and error.status == 401:
                self.runner.run(lambda: self.tokens.delete(url, email))
                self.signedOut.emit("Your session has ended; please sign in again.")
            else:
                self.signedOut.emit(describe(error))

        self.runner.run(restore, done, failed)

    def sign_in(self, email: str, password: str, create: bool = False) -> None:
        api = self._require_api()
        call = api.register if create else api.login

        def done(result: Any) -> None:
            self._signed_in(result.user.email, result.token, None)

        def failed(error: BaseException) -> None:
            wrong = isinstance(error, ApiError) and error.code == "invalid_credentials"
            self.authFailed.emit(describe(error), wrong)

        self.runner.run(lambda: call(email, password), done, failed)

    def _signed_in(self, email: str, token: str, balance: int | None) -> None:
        self.account = Account(email=email, packs=self.account.packs)
        url = self.backend_url or ""
        self.runner.run(lambda: self.tokens.save(url, email, token))
        self.settings.update(last_email=email)
        log.info("signed in as %s", email)
        self.signedIn.emit(email)
        if balance is not None:
            self.set_balance(balance)
        self.refresh()

    def sign_out(self) -> None:
        api = self._require_api()
        self._forget_token()
        self.account = Account(packs=self.account.packs)
        token_api = ApiClient(api.base_url, api.token)
        api.token = None
        # Revoke the token on the server too; signing out locally does not wait for it.
        self.runner.run(token_api.logout, lambda _: token_api.close(), lambda _: token_api.close())
        self.signedOut.emit("")

    # -- balance and history -----------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Health, balance and the newest page of history; skipped while a refresh is under way."""
        if self.api is None:
            return
        self.check_health()
        if not self.signed_in or self._refreshing:
            return
        api = self.api
        self._refreshing = True

        def fetch() -> tuple[int, Any]:
            return api.balance(), api.transactions(limit=HISTORY_PAGE)

        def done(result: tuple[int, Any]) -> None:
            self._refreshing = False
            balance, page = result
            self.set_balance(balance)
            self.account.history = list(page.items)
            self.account.next_cursor = page.next_cursor
            self.historyChanged.emit(self.account.history, page.next_cursor is not None)

        def failed(error: BaseException) -> None:
            self._refreshing = False
            self._auth_error_or_report(error)

        self.runner.run(fetch, done, failed)

    def load_older(self) -> None:
        if self.api is None or not self.account.next_cursor or self._history_loading:
            return
        api, cursor = self.api, self.account.next_cursor
        self._history_loading = True

        def done(page: Any) -> None:
            self._history_loading = False
            known = {t.id for t in self.account.history}
            self.account.history += [t for t in page.items if t.id not in known]
            self.account.next_cursor = page.next_cursor
            self.historyChanged.emit(self.account.history, page.next_cursor is not None)

        def failed(error: BaseException) -> None:
            self._history_loading = False
            self._report(error)

        self.runner.run(lambda: api.transactions(limit=HISTORY_PAGE, before=cursor), done, failed)

    def set_balance(self, balance: int) -> None:
        self.account.balance = balance
        self.balanceChanged.emit(balance)

    # -- errors ------------------------------------------------------------------------------------------------

    def _auth_error_or_report(self, error: BaseException) -> None:
        if isinstance(error, ApiError) and error.status == 401 and self.signed_in:
            self._forget_token()
            self.account = Account(packs=self.account.packs)
            if self.api is not None:
                self.api.token = None
            self.signedOut.emit("Your session has ended; please sign in again.")
            return
        if isinstance(error, BackendUnreachable):
            self.health = Health(False, self.health.payments, self.health.version, describe(error))
            self.healthChanged.emit(self.health)
        self._report(error)

    def _forget_token(self) -> None:
        url, email = self.backend_url or "", self.account.email
        if email:
            self.runner.run(lambda: self.tokens.delete(url, email))

    def _report(self, error: BaseException) -> None:
        message = describe(error)
        log.warning("%s", message)
        self.errorOccurred.emit(message)

    def _require_api(self) -> ApiClient:
        if self.api is None:
            raise RuntimeError("the backend is not connected yet")
        return self.api

    def new_client(self) -> ApiClient:
        """A client of its own for long-running work (a purchase), sharing the signed-in token."""
        api = self._require_api()
        return ApiClient(api.base_url, api.token)

    def run(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[BaseException], None] | None = None) -> Any:
        return self.runner.run(fn, on_done, on_error)


def build_diagnostics(controller: AppController) -> Callable[[], dict[str, Any]]:
    """A blocking call (run it on a worker) that builds the support report from the app's state."""
    from desktop.core.diagnostics import build_report

    api = controller.api
    backend_url, email = controller.backend_url, controller.account.email
    errors = controller.recent_errors.messages() if controller.recent_errors else []
    token = api.token if api is not None else None

    def build() -> dict[str, Any]:
        return build_report(
            backend_url=backend_url, bundled=controller.bundled is not None, account_email=email,
            token_store=controller.tokens, paths=controller.paths, pending=controller.pending, errors=errors,
            log_file=controller.paths.log_file, known_secrets=[token], health_timeout=10.0,
        )

    return build
