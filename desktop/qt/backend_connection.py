"""The backend as the app sees it: where it is, whether it answers, and the client that talks to it.

A :class:`~desktop.qt.supervisor.BackendSupervisor` keeps the backend there (the bundled one started and
restarted; one given by URL probed until it answers); this object turns what it says into the app's view of the
backend (:class:`BackendState`) and its signals. While the backend does not answer the figures shown are stale and
buying is off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.core.bundled_backend import BundledBackend
from desktop.core.identity import BackendIdentity
from desktop.core.models import BackendUnreachable
from desktop.qt.supervisor import BackendSupervisor
from desktop.qt.workers import Workers, describe

if TYPE_CHECKING:
    from desktop.core.api import ApiClient
    from desktop.core.settings import AppPaths

log = logging.getLogger("desktop.controller")


@dataclass
class BackendState:
    reachable: bool = False
    payments: str = ""
    version: str = ""
    message: str = "Connecting…"
    payments_available: bool = True  # the backend reaches its payment provider (Stripe), as its health says


# How often the backend's health is read while it answers: Stripe's reachability can change at any time, and a
# Buy should be off before it fails. Sooner while payments are unavailable (or when its breaker says).
HEALTH_INTERVAL_MS = 30_000
HEALTH_TIMEOUT = 5.0  # seconds a health check waits for its answer
UNAVAILABLE_INTERVAL_MS = 10_000


class BackendConnection(QObject):
    backendReady = Signal(str)  # the first time the backend answers
    backendFailed = Signal(str)  # it does not (yet): what is wrong and what happens next
    onlineChanged = Signal(bool)  # the backend answers again / stopped answering (figures are stale)
    healthChanged = Signal(object)  # BackendState
    answered = Signal(bool)  # the backend answers: True the first time (after backendReady), False when back

    def __init__(self, workers: Workers, paths: AppPaths, backend_url: str | None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.workers = workers
        self.url = backend_url
        if backend_url is None:
            self.bundled: BundledBackend | None = BundledBackend(paths.data_dir, paths.log_dir)
            self.identity = BackendIdentity.for_bundled(self.bundled.db_path)
        else:
            self.bundled = None
            self.identity = BackendIdentity.for_url(backend_url)
        self.supervisor = (BackendSupervisor(workers.runner, bundled=self.bundled, parent=self) if self.bundled
                           else BackendSupervisor(workers.runner, url=backend_url, parent=self))
        self.supervisor.up.connect(self._up)
        self.supervisor.down.connect(self._down)
        self.api: ApiClient | None = None
        self.health = BackendState()
        self.online = False
        self._connected = False
        self._health_timer = QTimer(self)
        self._health_timer.setSingleShot(True)
        self._health_timer.timeout.connect(self.check_health)

    def start(self) -> None:
        if self.bundled is not None:
            log.info("starting the bundled backend (stub payments mode)")
        self.supervisor.start()

    def stop(self, *, keep_serving: bool) -> None:
        """Stop supervising. The bundled backend stops too, unless ``keep_serving``: purchases in flight need it
        to serve their checkout pages until they are paid or cancelled (or a while)."""
        self._health_timer.stop()
        self.supervisor.stop()
        if self.bundled is not None and keep_serving and self.bundled.running:
            self.bundled.release()
        elif self.bundled is not None:
            self.bundled.stop()  # first: it also ends a start under way, which a worker may be waiting on

    def close(self) -> None:
        """Close the client's connections (once the workers are done with it)."""
        if self.api is not None:
            self.api.close()

    def require_api(self) -> ApiClient:
        if self.api is None:
            raise RuntimeError("the backend is not connected yet")
        return self.api

    def check_health(self) -> None:
        api = self.api
        if api is None:
            return

        def done(result: Any) -> None:
            available = result.payments_available
            message = "Connected" if available else (
                "Connected, but the backend cannot reach Stripe just now: buying is off until it can.")
            self.health = BackendState(True, result.payments, result.version, message, available)
            self.healthChanged.emit(self.health)
            wait = UNAVAILABLE_INTERVAL_MS if not available else HEALTH_INTERVAL_MS
            if not available and result.provider_retry_after:
                wait = min(max(result.provider_retry_after * 1000, 1000), HEALTH_INTERVAL_MS)
            if self.online:
                self._health_timer.start(wait)

        def failed(error: BaseException) -> None:
            if isinstance(error, BackendUnreachable):
                self.unreachable(describe(error))

        self.workers.run(lambda: api.health(timeout=HEALTH_TIMEOUT), done, failed)

    def unreachable(self, message: str) -> None:
        """A call found the backend not answering: stale figures, buying off, and the supervisor takes over."""
        self._set_online(False, message)
        self.supervisor.report_unreachable(message)

    def _up(self, url: str) -> None:
        self.url = url.rstrip("/")
        first = not self._connected
        if self.api is None:
            from desktop.core.api import ApiClient  # the HTTP stack, loaded once the window is up

            self.api = ApiClient(self.url)
        else:
            self.api.base_url = self.url  # the bundled backend may have come back on another port
        self._connected = True
        self._set_online(True, "Connected")
        if first:
            log.info("backend at %s", self.url)
            self.backendReady.emit(self.url)
        self.answered.emit(first)

    def _down(self, message: str) -> None:
        if not self._connected:
            self.backendFailed.emit(message)
        self._set_online(False, message)

    def _set_online(self, online: bool, message: str) -> None:
        changed = online != self.online
        self.online = online
        self.health = BackendState(online, self.health.payments, self.health.version, message,
                                   self.health.payments_available)
        self.healthChanged.emit(self.health)
        if not online:
            self._health_timer.stop()
        if changed:
            self.onlineChanged.emit(online)
        if online:
            self.check_health()
