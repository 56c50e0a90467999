"""The app's parts on the GUI thread, put together: the workers, the backend, the signed-in account, its figures
(packs, balance, history) and the purchases.

Each part is a small object of its own module; this one only makes them, starts them and stops them, and keeps
the window's geometry. Every call to the backend, the keyring or the disk runs on a worker
(:class:`~desktop.qt.workers.Workers`); the parts keep the results and tell the widgets through their signals:

- :class:`~desktop.qt.backend_connection.BackendConnection` (``backend``): ``backendReady``, ``backendFailed``,
  ``onlineChanged``, ``healthChanged``;
- :class:`~desktop.qt.account_session.AccountSession` (``session``): ``signedIn``, ``signedOut``, ``authFailed``;
- :class:`~desktop.qt.account_figures.AccountFigures` (``figures``): ``packsChanged``, ``balanceChanged``,
  ``historyChanged``;
- :class:`~desktop.qt.purchase_controller.Purchases` (``purchases``): ``purchaseAdded``, ``paymentLanded``;
- :class:`~desktop.qt.workers.Workers` (``workers``): ``errorOccurred``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from desktop.core import build_config
from desktop.core.build_config import BuildConfig
from desktop.core.logs import RecentErrors
from desktop.core.purchase_records import PurchaseRecords
from desktop.core.settings import AppPaths, HelpSettings, SettingsStore
from desktop.core.tokens import TokenStore
from desktop.qt.account_figures import AccountFigures
from desktop.qt.account_session import AccountSession
from desktop.qt.backend_connection import BackendConnection
from desktop.qt.purchase_controller import Opener, Purchases
from desktop.qt.workers import Workers

if TYPE_CHECKING:  # made at start, after the window's first paint (see AppController.updates)
    from desktop.qt.update_controller import UpdateController


class AppController(QObject):
    updatesMade = Signal(object)  # UpdateController: the updates' part, just made (see updates)

    def __init__(self, paths: AppPaths, *, backend_url: str | None, opener: Opener,
                 token_store: TokenStore | None = None, recent_errors: RecentErrors | None = None,
                 poll: tuple[float, float] = (2.0, 30.0), help_settings: HelpSettings | None = None,
                 build: BuildConfig | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.paths = paths
        build = build or build_config.current()
        # What the app maker configured for Help: the environment, else the build's [help].
        self.help = help_settings or HelpSettings.from_env(
            default=HelpSettings(build.help_docs_url, build.help_support_contact))
        self.recent_errors = recent_errors
        self.settings = SettingsStore(paths.settings_file)
        self.purchase_records = PurchaseRecords(paths.purchase_records_file)
        self.workers = Workers(self)
        self.backend = BackendConnection(self.workers, paths, backend_url, parent=self)
        self.session = AccountSession(self.workers, self.backend,
                                      token_store or TokenStore(index_path=paths.keyring_index_file),
                                      self.settings, self.purchase_records, parent=self)
        self.figures = AccountFigures(self.workers, self.backend, self.session, parent=self)
        self.purchases = Purchases(self.workers, self.backend, self.session, self.figures, self.purchase_records,
                                   opener, poll=poll, parent=self)
        self.build = build
        self._updates: UpdateController | None = None

    @property
    def updates(self) -> UpdateController:
        """Updates of the installed app (none from a checkout: its build names no update server). Made by
        :meth:`start` (after the window's first paint: its modules and packaging's take some 6 ms to load), or
        when first asked for if that is sooner (Help → Check for updates)."""
        if self._updates is None:
            from desktop.qt.update_controller import UpdateController

            self._updates = UpdateController(self.workers, self.paths.data_dir, self.build, self.purchases.in_flight,
                                             parent=self)
            self.updatesMade.emit(self._updates)
        return self._updates

    @property
    def updates_made(self) -> UpdateController | None:
        """The updates' part if it is made yet (without making it)."""
        return self._updates

    def start(self) -> None:
        """Read the settings (on the disk worker) and bring the backend up."""
        self.session.load_last_email()
        self.backend.start()
        self.updates.start()

    def shutdown(self) -> None:
        if self._updates is not None:
            self._updates.daily.stop()
            self._updates.wait_timer.stop()
        self.figures.stop()
        in_flight = self.purchases.stop()
        self.backend.stop(keep_serving=in_flight)
        self.workers.wait_for_done(15_000)
        self.backend.close()

    def save_geometry(self, geometry: str) -> None:
        self.workers.write(lambda: self.settings.update(window_geometry=geometry))


def build_diagnostics(controller: AppController) -> Callable[[], dict[str, Any]]:
    """A blocking call (run it on a worker) that builds the support report from the app's state."""
    from desktop.core.diagnostics import build_report

    backend, session = controller.backend, controller.session
    api = backend.api
    backend_url, email = backend.url, session.email
    errors = controller.recent_errors.messages() if controller.recent_errors else []
    token = api.token if api is not None else None
    supervisor = backend.supervisor

    def build() -> dict[str, Any]:
        return build_report(
            backend_url=backend_url, identity=backend.identity, bundled=backend.bundled is not None,
            account_email=email, token=token, token_store=session.tokens, paths=controller.paths,
            purchase_records=controller.purchase_records, errors=errors, log_file=controller.paths.log_file,
            health_timeout=10.0,
            supervision={"restarts": supervisor.restarts, "problem": supervisor.last_problem,
                         "online": backend.online},
        )

    return build
