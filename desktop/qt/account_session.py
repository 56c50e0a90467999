"""The account signed in on this backend: signing in (or up), the sign-in restored at start, signing out, and
the token kept for it in the keyring.

The keyring, the settings file and the backend are used on workers only. The app's other parts set up for an
account on ``began`` and drop it on ``ended``, before the windows hear ``signedIn`` and ``signedOut``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from desktop.core.models import ApiError, BackendUnreachable
from desktop.qt.backend_connection import BackendConnection
from desktop.qt.workers import Workers, describe
from resources.redaction import mask_email

if TYPE_CHECKING:
    from desktop.core.purchase_records import PurchaseRecords
    from desktop.core.settings import SettingsStore
    from desktop.core.signin import Restored
    from desktop.core.tokens import TokenStore

log = logging.getLogger("desktop.controller")


class AccountSession(QObject):
    signedIn = Signal(str)
    signedOut = Signal(str)  # a reason to show, or ""
    authFailed = Signal(str, bool)  # message, whether the password was wrong
    resetCodeSent = Signal(str, object)  # the email, the server's ResetCodeSent (the same for an account or none)
    passwordChanged = Signal(str)  # the email: a new password set with a reset code (signedIn came just before)
    resetFailed = Signal(str, str)  # a sentence for the user, the error's code ("invalid_code", "rate_limited", ...)
    began = Signal(str, object)  # the email and the balance a restored sign-in read (or None): before signedIn
    ended = Signal()  # the account signed out, or its sign-in ended: before signedOut

    def __init__(self, workers: Workers, backend: BackendConnection, tokens: TokenStore, settings: SettingsStore,
                 purchase_records: PurchaseRecords, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.workers = workers
        self.backend = backend
        self.tokens = tokens
        self.settings = settings
        self.purchase_records = purchase_records
        self.email: str | None = None  # the account signed in
        # One number per sign-in (and per sign-out): an answer to a call made under another one (a sign-out, or
        # another account, came in between) is not this session's, neither its figures nor its 401.
        self.generation = 0
        self.last_email: str | None = None  # the account last signed in on this backend: the sign-in page's
        self.restoring = False
        backend.answered.connect(self._backend_answered)

    @property
    def signed_in(self) -> bool:
        return self.email is not None

    def load_last_email(self) -> None:
        """Read the settings (on the disk worker) for the email the sign-in page offers."""
        key = self.backend.identity.key
        self.workers.disk.run(lambda: self.settings.load().email_for(key), self._last_email_loaded)

    def _last_email_loaded(self, email: str | None) -> None:
        self.last_email = email

    def _backend_answered(self, first: bool) -> None:
        if first or (not self.signed_in and not self.restoring):
            self.restore()

    def legacy_names(self) -> set[str]:
        """The bundled backend's names of earlier versions (reading the purchases file: call on a worker)."""
        identity = self.backend.identity
        if not identity.bundled:
            return set()
        from desktop.core.signin import legacy_bundled_names

        return legacy_bundled_names(self.purchase_records.all(), identity.key)

    def restore(self) -> None:
        """Sign in again with the token kept for the last account on this backend, if it still works."""
        url, key, tokens = self.backend.url or "", self.backend.identity.key, self.tokens
        self.restoring = True
        # A sign-in by hand while this looks (the backend back, the user quicker) wins: what restore finds then
        # (no kept token after a sign-out) must not sign them out again (seen in CI: the account page flipped back).
        started = self.generation

        def restore() -> Restored | None:
            # Finding the keyring imports every keyring backend (some run helper programs) and talking to it
            # can be slow (an IPC call, even an unlock prompt): off the GUI thread, after the window is up.
            from desktop.core.signin import restore_sign_in

            tokens.prepare()
            email = self.settings.load().email_for(key)
            self.last_email = email
            if not email:
                return None
            return restore_sign_in(url, key, email, tokens, self.legacy_names())

        def done(result: Restored | None) -> None:
            self.restoring = False
            if self.generation != started:
                return
            if result is None:
                self.signedOut.emit("")
                return
            self.backend.require_api().token = result.token
            self._begin(result.email, result.token, result.balance)

        def failed(error: BaseException) -> None:
            self.restoring = False
            if isinstance(error, BackendUnreachable):
                self.backend.unreachable(describe(error))
            if self.generation == started:
                self.signedOut.emit(describe(error))

        self.workers.run(restore, done, failed)

    def sign_in(self, email: str, password: str, create: bool = False) -> None:
        api = self.backend.require_api()
        call = api.register if create else api.login

        def done(result: Any) -> None:
            self._begin(result.user.email, result.token, None)

        def failed(error: BaseException) -> None:
            wrong = isinstance(error, ApiError) and error.code == "invalid_credentials"
            if isinstance(error, BackendUnreachable):
                self.backend.unreachable(describe(error))
            self.authFailed.emit(describe(error), wrong)

        self.workers.run(lambda: call(email, password), done, failed)

    def request_reset(self, email: str) -> None:
        """Ask the backend to mail a code for a new password (forgot password)."""
        api = self.backend.require_api()
        self.workers.run(lambda: api.request_password_reset(email),
                         lambda sent: self.resetCodeSent.emit(email, sent), self._reset_failed)

    def confirm_reset(self, email: str, code: str, password: str) -> None:
        """Set a new password with the mailed code; signed in on success (every other sign-in has ended)."""
        api = self.backend.require_api()

        def done(result: Any) -> None:
            log.info("a new password was set with a reset code")
            self._begin(result.user.email, result.token, None)
            self.passwordChanged.emit(result.user.email)

        self.workers.run(lambda: api.confirm_password_reset(email, code, password), done, self._reset_failed)

    def _reset_failed(self, error: BaseException) -> None:
        if isinstance(error, BackendUnreachable):
            self.backend.unreachable(describe(error))
        code = error.code if isinstance(error, ApiError) else ""
        self.resetFailed.emit(describe(error), code)

    def _begin(self, email: str, token: str, balance: int | None) -> None:
        self.email = email
        self.last_email = email
        self.generation += 1
        url, key, tokens = self.backend.url or "", self.backend.identity.key, self.tokens

        def keep() -> None:
            from desktop.core.signin import tidy_sign_ins

            tokens.save(key, email, token)
            self.settings.remember_email(key, email)
            others = {p.account_email for p in self.purchase_records.all()}
            tidy_sign_ins(url, key, email, tokens, self.legacy_names(), others)

        self.workers.run(keep)
        log.info("signed in as %s", mask_email(email))
        self.began.emit(email, balance)
        self.signedIn.emit(email)

    def sign_out(self) -> None:
        api = self.backend.require_api()
        self._forget_token()
        self._end()
        from desktop.core.api import ApiClient

        token_api = ApiClient(api.base_url, api.token)
        api.token = None
        # Revoke the token on the server too; signing out locally does not wait for it.
        self.workers.run(token_api.logout, lambda _: token_api.close(), lambda _: token_api.close())
        self.signedOut.emit("")

    def session_ended(self, generation: int | None = None) -> None:
        """The backend no longer knows the sign-in (401): ask for it again; purchases wait meanwhile. A 401 to a
        call of an earlier ``generation`` (made before a sign-out, answered after the next sign-in) ends nothing."""
        if not self.signed_in or (generation is not None and generation != self.generation):
            return
        self._forget_token()
        self._end()
        if self.backend.api is not None:
            self.backend.api.token = None
        self.signedOut.emit("Your session has ended; please sign in again. Purchases in flight carry on after.")

    def _end(self) -> None:
        self.email = None
        self.generation += 1
        self.ended.emit()

    def _forget_token(self) -> None:
        key, email = self.backend.identity.key, self.email
        if email:
            self.workers.run(lambda: self.tokens.delete(key, email))
