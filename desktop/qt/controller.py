"""The app's state on the GUI thread: the backend, the signed-in account, balance, packs, history and the
purchases in flight.

Every call to the backend, the keyring or the disk runs on a worker (network and keyring through ``run``; the
app's own files, in order, through ``write``); this object only keeps the results and tells the widgets through
signals. The backend is kept there by a :class:`BackendSupervisor`; while it does not answer the figures shown
are stale and buying is off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.core.bundled_backend import BundledBackend
from desktop.core.identity import BackendIdentity
from desktop.core.logs import RecentErrors
from desktop.core.models import ApiClientError, ApiError, BackendUnreachable, Pack, Transaction
from desktop.core.purchase_records import PurchaseRecord, PurchaseRecords
from desktop.core.redact import mask_email
from desktop.core.settings import AppPaths, SettingsStore
from desktop.core.tokens import TokenStore
from desktop.qt.purchase_controller import PurchaseController
from desktop.qt.supervisor import BackendSupervisor
from desktop.qt.tasks import Task, TaskRunner

if TYPE_CHECKING:
    from desktop.core.api import ApiClient
    from desktop.core.signin import Restored

log = logging.getLogger("desktop.controller")

REFRESH_INTERVAL_MS = 30_000
HISTORY_PAGE = 50

Opener = Callable[[str], bool]


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
class BackendState:
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
    updated_at: datetime | None = None  # when balance and history last came from the backend


class AppController(QObject):
    backendReady = Signal(str)  # the first time the backend answers
    backendFailed = Signal(str)  # it does not (yet): what is wrong and what happens next
    onlineChanged = Signal(bool)  # the backend answers again / stopped answering (figures are stale)
    healthChanged = Signal(object)  # BackendState
    signedIn = Signal(str)
    signedOut = Signal(str)  # a reason to show, or ""
    authFailed = Signal(str, bool)  # message, whether the password was wrong
    balanceChanged = Signal(int)
    packsChanged = Signal(list)
    historyChanged = Signal(list, bool)  # all rows, whether older rows exist
    errorOccurred = Signal(str)
    purchaseAdded = Signal(object)  # PurchaseController
    paymentLanded = Signal(str)  # a payment found by the history, not by a purchase in flight: a sentence

    def __init__(self, paths: AppPaths, *, backend_url: str | None, opener: Opener,
                 token_store: TokenStore | None = None, recent_errors: RecentErrors | None = None,
                 poll: tuple[float, float] = (2.0, 30.0), parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.paths = paths
        self.opener = opener
        self.poll = poll
        self.configured_url = backend_url
        self.backend_url = backend_url
        if backend_url is None:
            self.bundled: BundledBackend | None = BundledBackend(paths.data_dir, paths.log_dir)
            self.identity = BackendIdentity.for_bundled(self.bundled.db_path)
        else:
            self.bundled = None
            self.identity = BackendIdentity.for_url(backend_url)
        self.tokens = token_store or TokenStore(index_path=paths.keyring_index_file)
        self.settings = SettingsStore(paths.settings_file)
        self.pending = PurchaseRecords(paths.pending_file)
        self.recent_errors = recent_errors
        self.runner = TaskRunner(self)
        self.disk = TaskRunner(self, max_threads=1)  # the app's own files, written in order
        self.supervisor = (BackendSupervisor(self.runner, bundled=self.bundled, parent=self) if self.bundled
                           else BackendSupervisor(self.runner, url=backend_url, parent=self))
        self.supervisor.up.connect(self._backend_up)
        self.supervisor.down.connect(self._backend_down)
        self.api: ApiClient | None = None
        self.health = BackendState()
        self.account = Account()
        self.online = False
        self.last_email: str | None = None
        self.purchases: list[PurchaseController] = []
        self._connected = False
        self._refreshing = False
        self._refresh_again = False
        self._balance_version = 0  # counts set_balance calls: a refresh's older answer does not undo a newer one
        self._history_loading = False
        self._restoring = False
        self._announced: set[str] = set()  # sessions whose payment was already told
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_INTERVAL_MS)
        self._timer.timeout.connect(self.refresh)

    # -- start and stop ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Read the settings (on the disk worker) and bring the backend up."""
        self.disk.run(lambda: self.settings.load().email_for(self.identity.key), self._settings_loaded)
        if self.bundled is not None:
            log.info("starting the bundled backend (stub payments mode)")
        self.supervisor.start()

    def _settings_loaded(self, email: str | None) -> None:
        self.last_email = email

    def _backend_up(self, url: str) -> None:
        self.backend_url = url.rstrip("/")
        first = not self._connected
        if self.api is None:
            from desktop.core.api import ApiClient  # the HTTP stack, loaded once the window is up

            self.api = ApiClient(self.backend_url)
        else:
            self.api.base_url = self.backend_url  # the bundled backend may have come back on another port
        self._connected = True
        self._set_online(True, "Connected")
        if first:
            log.info("backend at %s", self.backend_url)
            self.backendReady.emit(self.backend_url)
            self.load_packs()
            self._timer.start()
            self._restore_session()
            return
        if not self.account.packs:
            self.load_packs()
        if self.signed_in:
            self.refresh()
        elif not self._restoring:
            self._restore_session()

    def _backend_down(self, message: str) -> None:
        if not self._connected:
            self.backendFailed.emit(message)
        self._set_online(False, message)

    def _set_online(self, online: bool, message: str) -> None:
        changed = online != self.online
        self.online = online
        self.health = BackendState(online, self.health.payments, self.health.version, message)
        self.healthChanged.emit(self.health)
        if changed:
            self.onlineChanged.emit(online)
        if online:
            self.check_health()

    def backend_unreachable(self, message: str) -> None:
        """A call found the backend not answering: stale figures, buying off, and the supervisor takes over."""
        self._set_online(False, message)
        self.supervisor.report_unreachable(message)

    def shutdown(self) -> None:
        self._timer.stop()
        self.supervisor.stop()
        in_flight = [purchase for purchase in self.purchases if purchase.flow.is_active]
        for purchase in self.purchases:
            purchase.stop()
        if self.bundled is not None and in_flight and self.bundled.running:
            self.bundled.release()  # it serves their checkout pages until they are paid or cancelled (or a while)
        elif self.bundled is not None:
            self.bundled.stop()  # first: it also ends a start under way, which a worker may be waiting on
        self.runner.wait_for_done(15_000)
        self.disk.wait_for_done(15_000)
        if self.api is not None:
            self.api.close()

    # -- health, packs ------------------------------------------------------------------------------------------

    def check_health(self) -> None:
        api = self.api
        if api is None:
            return

        def done(result: Any) -> None:
            self.health = BackendState(True, result.payments, result.version, "Connected")
            self.healthChanged.emit(self.health)

        def failed(error: BaseException) -> None:
            if isinstance(error, BackendUnreachable):
                self.backend_unreachable(describe(error))

        self.runner.run(lambda: api.health(timeout=5), done, failed)

    def load_packs(self) -> None:
        api = self._require_api()

        def done(packs: list[Pack]) -> None:
            self.account.packs = packs
            self.packsChanged.emit(packs)

        self.runner.run(api.packs, done, self._auth_error_or_report)

    # -- accounts ----------------------------------------------------------------------------------------------

    @property
    def signed_in(self) -> bool:
        return self.account.email is not None

    def _legacy_names(self) -> set[str]:
        """The bundled backend's names of earlier versions (reading the purchases file: call on a worker)."""
        if not self.identity.bundled:
            return set()
        from desktop.core.signin import legacy_bundled_names

        return legacy_bundled_names(self.pending.all(), self.identity.key)

    def _restore_session(self) -> None:
        """Sign in again with the token kept for the last account on this backend, if it still works."""
        url, key, tokens = self.backend_url or "", self.identity.key, self.tokens
        self._restoring = True

        def restore() -> Restored | None:
            # Finding the keyring imports every keyring backend (some run helper programs) and talking to it
            # can be slow (an IPC call, even an unlock prompt): off the GUI thread, after the window is up.
            from desktop.core.signin import restore_sign_in

            tokens.prepare()
            email = self.settings.load().email_for(key)
            self.last_email = email
            if not email:
                return None
            return restore_sign_in(url, key, email, tokens, self._legacy_names())

        def done(result: Restored | None) -> None:
            self._restoring = False
            if result is None:
                self.signedOut.emit("")
                return
            self._require_api().token = result.token
            self._signed_in(result.email, result.token, result.balance)

        def failed(error: BaseException) -> None:
            self._restoring = False
            if isinstance(error, BackendUnreachable):
                self.backend_unreachable(describe(error))
            self.signedOut.emit(describe(error))

        self.runner.run(restore, done, failed)

    def sign_in(self, email: str, password: str, create: bool = False) -> None:
        api = self._require_api()
        call = api.register if create else api.login

        def done(result: Any) -> None:
            self._signed_in(result.user.email, result.token, None)

        def failed(error: BaseException) -> None:
            wrong = isinstance(error, ApiError) and error.code == "invalid_credentials"
            if isinstance(error, BackendUnreachable):
                self.backend_unreachable(describe(error))
            self.authFailed.emit(describe(error), wrong)

        self.runner.run(lambda: call(email, password), done, failed)

    def _signed_in(self, email: str, token: str, balance: int | None) -> None:
        previous = [p for p in self.purchases if p.email.lower() != email.lower()]
        for purchase in previous:  # another account's purchases: they stay on disk for when it is back
            purchase.stop()
            self.purchases.remove(purchase)
        self.account = Account(email=email, packs=self.account.packs)
        self.last_email = email
        url, key, tokens = self.backend_url or "", self.identity.key, self.tokens

        def keep() -> None:
            from desktop.core.signin import tidy_sign_ins

            tokens.save(key, email, token)
            self.settings.remember_email(key, email)
            others = {p.account_email for p in self.pending.all()}
            tidy_sign_ins(url, key, email, tokens, self._legacy_names(), others)

        self.runner.run(keep)
        log.info("signed in as %s", mask_email(email))
        self.signedIn.emit(email)
        if balance is not None:
            self.set_balance(balance)
        self.refresh()
        for purchase in self.purchases:
            purchase.signed_in_again()
        self._resume_unfinished(email)

    def sign_out(self) -> None:
        api = self._require_api()
        self._forget_token()
        self._end_account()
        from desktop.core.api import ApiClient

        token_api = ApiClient(api.base_url, api.token)
        api.token = None
        # Revoke the token on the server too; signing out locally does not wait for it.
        self.runner.run(token_api.logout, lambda _: token_api.close(), lambda _: token_api.close())
        self.signedOut.emit("")

    def session_ended(self) -> None:
        """The backend no longer knows the sign-in (401): ask for it again; purchases wait meanwhile."""
        if not self.signed_in:
            return
        self._forget_token()
        self._end_account()
        if self.api is not None:
            self.api.token = None
        self.signedOut.emit("Your session has ended; please sign in again. Purchases in flight carry on after.")

    def _end_account(self) -> None:
        for purchase in self.purchases:
            purchase.signed_out()
        self.account = Account(packs=self.account.packs)

    def _forget_token(self) -> None:
        key, email = self.identity.key, self.account.email
        if email:
            self.runner.run(lambda: self.tokens.delete(key, email))

    # -- buying -----------------------------------------------------------------------------------------------

    @property
    def can_buy(self) -> bool:
        return self.online and self.signed_in and self.api is not None

    def buy(self, pack: Pack) -> PurchaseController | None:
        """Start a purchase (several may be in flight)."""
        if not self.can_buy:
            return None
        purchase = self._new_purchase()
        purchase.start(pack)
        return purchase

    def _new_purchase(self) -> PurchaseController:
        first, cap = self.poll
        purchase = PurchaseController(self, first_delay=first, max_delay=cap, parent=self)
        purchase.finished.connect(self._purchase_finished)
        self.purchases.append(purchase)
        self.purchaseAdded.emit(purchase)
        return purchase

    def _purchase_finished(self, purchase: PurchaseController) -> None:
        if purchase.session_id and purchase.flow.payment_status == "paid":
            self._announced.add(purchase.session_id)

    def dismiss(self, purchase: PurchaseController) -> None:
        """The user closed a finished purchase's panel."""
        if purchase in self.purchases and purchase.flow.is_terminal:
            self.purchases.remove(purchase)
            purchase.deleteLater()

    def _resume_unfinished(self, email: str) -> None:
        """Pick up this account's purchases that an earlier run (or sign-in) left in flight."""
        key = self.identity.key

        def find() -> list[PurchaseRecord]:
            for name in self._legacy_names():  # purchases of earlier versions, filed under an old URL
                self.pending.refile(name, key)
            return self.pending.unfinished(key, email)

        def done(records: list[PurchaseRecord]) -> None:
            if self.account.email != email:
                return
            live = {p.session_id for p in self.purchases}
            for record in records:
                if record.session_id not in live:
                    log.info("resuming an unfinished purchase: session=%s", record.session_id)
                    self._new_purchase().resume(record)

        self.disk.run(find, done, self._report)

    # -- balance and history -----------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Health, balance and the newest page of history. Older pages already loaded stay, and new rows go on
        top. Asked while a refresh is under way (which may have read the balance before a payment), another one
        follows it."""
        if self.api is None:
            return
        self.check_health()
        if not self.signed_in:
            return
        if self._refreshing:
            self._refresh_again = True
            return
        api = self.api
        self._refreshing, self._refresh_again = True, False
        balance_version = self._balance_version

        def fetch() -> tuple[int, Any]:
            return api.balance(), api.transactions(limit=HISTORY_PAGE)

        def settle() -> None:
            self._refreshing = False
            if self._refresh_again:
                self.refresh()

        def done(result: tuple[int, Any]) -> None:
            if self.signed_in:
                balance, page = result
                if self._balance_version == balance_version:  # not older than a balance set meanwhile
                    self.set_balance(balance)
                self._merge_history(list(page.items), page.next_cursor)
                self.account.updated_at = datetime.now(UTC)
            settle()

        def failed(error: BaseException) -> None:
            self._auth_error_or_report(error)
            settle()

        self.runner.run(fetch, done, failed)

    def _merge_history(self, newest: list[Transaction], cursor: str | None) -> None:
        account = self.account
        first_load = account.updated_at is None and not account.history
        known = {t.id for t in account.history}
        new = [t for t in newest if t.id not in known]
        if not account.history or (len(new) == len(newest) and cursor is not None):
            # The first page, or more new rows than a page holds: start again from the newest.
            account.history, account.next_cursor = newest, cursor
        else:
            account.history = new + account.history
        if not first_load:
            self._announce(new)
        self.historyChanged.emit(account.history, account.next_cursor is not None)

    def _announce(self, rows: list[Transaction]) -> None:
        """A payment that landed without a purchase in flight telling of it (paid after it was cancelled or
        expired here, or in another app) is announced, never silent."""
        live = {p.session_id: p for p in self.purchases}
        for row in rows:
            if row.type != "purchase" or not row.reference or row.reference in self._announced:
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

    def load_older(self) -> None:
        if self.api is None or not self.account.next_cursor or self._history_loading:
            return
        api, cursor = self.api, self.account.next_cursor
        self._history_loading = True

        def done(page: Any) -> None:
            self._history_loading = False
            known = {t.id for t in self.account.history}
            self.account.history = self.account.history + [t for t in page.items if t.id not in known]
            self.account.next_cursor = page.next_cursor
            self.historyChanged.emit(self.account.history, page.next_cursor is not None)

        def failed(error: BaseException) -> None:
            self._history_loading = False
            self._auth_error_or_report(error)

        self.runner.run(lambda: api.transactions(limit=HISTORY_PAGE, before=cursor), done, failed)

    def set_balance(self, balance: int) -> None:
        self._balance_version += 1
        self.account.balance = balance
        self.balanceChanged.emit(balance)

    # -- errors ------------------------------------------------------------------------------------------------

    def _auth_error_or_report(self, error: BaseException) -> None:
        if isinstance(error, ApiError) and error.status == 401 and self.signed_in:
            self.session_ended()
            return
        if isinstance(error, BackendUnreachable):
            self.backend_unreachable(describe(error))
        self._report(error)

    def _report(self, error: BaseException) -> None:
        message = describe(error)
        log.warning("%s", message)
        self.errorOccurred.emit(message)

    def _require_api(self) -> ApiClient:
        if self.api is None:
            raise RuntimeError("the backend is not connected yet")
        return self.api

    def describe(self, error: BaseException) -> str:
        return describe(error)

    def run(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[BaseException], None] | None = None) -> Task:
        """Network and keyring work on a worker; the callbacks run on the GUI thread."""
        return self.runner.run(fn, on_done, on_error)

    def write(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None) -> Task:
        """The app's own files, on the one disk worker, in the order asked."""
        return self.disk.run(fn, on_done, self._disk_failed)

    def _disk_failed(self, error: BaseException) -> None:
        log.error("could not write the app's files: %s", error)
        self.errorOccurred.emit(f"Could not save the app's data: {error}")

    def save_geometry(self, geometry: str) -> None:
        self.write(lambda: self.settings.update(window_geometry=geometry))


def build_diagnostics(controller: AppController) -> Callable[[], dict[str, Any]]:
    """A blocking call (run it on a worker) that builds the support report from the app's state."""
    from desktop.core.diagnostics import build_report

    api = controller.api
    backend_url, email = controller.backend_url, controller.account.email
    errors = controller.recent_errors.messages() if controller.recent_errors else []
    token = api.token if api is not None else None
    supervisor = controller.supervisor

    def build() -> dict[str, Any]:
        return build_report(
            backend_url=backend_url, identity=controller.identity, bundled=controller.bundled is not None,
            account_email=email, token=token, token_store=controller.tokens, paths=controller.paths,
            pending=controller.pending, errors=errors, log_file=controller.paths.log_file, health_timeout=10.0,
            supervision={"restarts": supervisor.restarts, "problem": supervisor.last_problem,
                         "online": controller.online},
        )

    return build
