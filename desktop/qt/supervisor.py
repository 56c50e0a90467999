"""Keeping a backend there: the bundled one started, and restarted with backoff when it dies; a backend given by
URL probed with backoff while it does not answer.

The supervisor says ``up(url)`` when the backend answers (the first time and after each recovery) and ``down``
with a sentence for the user when it stops answering or exits; meanwhile it says when it tries next. Starting a
process and probing run on workers; only timers run on the GUI thread.
"""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from desktop.core.bundled_backend import BundledBackend
from desktop.qt.tasks import TaskRunner

log = logging.getLogger("desktop.supervisor")

BACKOFF_SECONDS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
# A bundled backend that dies sooner than this after coming up counts as failing to start: the wait grows.
STABLE_SECONDS = 60.0
# A bundled backend whose process runs but that has not answered this many probes in a row is hung: restarted.
HUNG_PROBES = 3
# Seconds a probe waits for /api/health.
PROBE_TIMEOUT = 5.0


def backoff(attempt: int) -> float:
    """Seconds before attempt ``attempt`` (1, 2, ...) to bring the backend back."""
    return BACKOFF_SECONDS[min(max(attempt, 1), len(BACKOFF_SECONDS)) - 1]


class BackendSupervisor(QObject):
    up = Signal(str)  # the backend's URL: it answers
    down = Signal(str)  # why it does not, and what happens next (a sentence for the user)

    _exited = Signal(int)  # from the bundled backend's watcher thread

    def __init__(self, runner: TaskRunner, *, url: str | None = None, bundled: BundledBackend | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        if (url is None) == (bundled is None):
            raise ValueError("give a URL or a bundled backend")
        self.runner = runner
        self.url = url
        self.bundled = bundled
        self.attempt = 0  # consecutive failed attempts
        self.is_up = False
        self.restarts = 0
        self.last_problem: str | None = None
        self._up_since = 0.0
        self._unanswered = 0  # probes in a row that a running bundled backend did not answer
        self._busy = False
        self._stopped = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._try)
        self._exited.connect(self._on_exit)
        if bundled is not None:
            bundled.on_exit = self._exited.emit  # a queued signal: safe from the watcher thread

    @property
    def next_try_in(self) -> float | None:
        """Seconds until the next attempt, or None when none is scheduled."""
        return self._timer.remainingTime() / 1000 if self._timer.isActive() else None

    def start(self) -> None:
        self._try()

    def stop(self) -> None:
        self._stopped = True
        self._timer.stop()

    def retry_now(self) -> None:
        if not self.is_up and not self._busy:
            self._timer.stop()
            self._try()

    def report_unreachable(self, message: str) -> None:
        """A call to the backend found it not answering: mark it down and probe until it answers again."""
        if not self.is_up or self._stopped:
            return
        self.is_up = False
        self.last_problem = message
        self.down.emit(f"{message} Trying again…")
        self._schedule()

    # -- internals ----------------------------------------------------------------------------------------------

    def _schedule(self) -> None:
        if self._stopped or self._busy or self._timer.isActive():
            return
        self._timer.start(int(backoff(self.attempt + 1) * 1000))

    @Slot()
    def _try(self) -> None:
        if self._stopped or self._busy:
            return
        self._busy = True
        if self.bundled is not None:
            bundled = self.bundled
            if not bundled.running:
                work = bundled.start
            elif self._unanswered >= HUNG_PROBES:
                log.warning("the built-in server has not answered %d times in a row; restarting it", self._unanswered)
                self.restarts += 1
                self._unanswered = 0
                work = lambda: self._restart(bundled)  # noqa: E731
            else:
                work = lambda: self._probe(bundled.url or "")  # noqa: E731
        else:
            url = self.url or ""
            work = lambda: self._probe(url)  # noqa: E731
        self.runner.run(work, self._answered, self._failed)

    @staticmethod
    def _probe(url: str) -> str:
        from desktop.core.api import ApiClient

        client = ApiClient(url, timeout=PROBE_TIMEOUT, retries=0)
        try:
            client.health(timeout=PROBE_TIMEOUT)
        finally:
            client.close()
        return url

    @staticmethod
    def _restart(bundled: BundledBackend) -> str:
        bundled.stop()  # a hung process does not stop when asked: it is killed
        return bundled.start()

    def _answered(self, url: str) -> None:
        self._busy = False
        self._unanswered = 0
        if self._stopped:
            return
        if self.attempt or self.last_problem:
            log.info("the backend answers again at %s", url)
        if self.bundled is None:
            self.attempt = 0
        self.last_problem = None
        self._up_since = time.monotonic()
        self.is_up = True
        self.up.emit(url)

    def _failed(self, error: BaseException) -> None:
        self._busy = False
        if self._stopped:
            return
        self.attempt += 1
        self.is_up = False
        wait = backoff(self.attempt + 1)
        if self.bundled is not None and self.bundled.running:
            self._unanswered += 1
            message = f"The built-in server does not answer: {error} Trying again in {wait:g} s."
        elif self.bundled is not None:
            message = (f"The built-in server could not be started: {error} "
                       f"Trying again in {wait:g} s.")
        else:
            message = (f"{error} Check that the Creditdesk server is running and that the address is right "
                       f"(--backend or CREDITDESK_BACKEND_URL). Trying again in {wait:g} s.")
        self.last_problem = str(error)
        log.warning("backend attempt %d failed: %s", self.attempt, error)
        self.down.emit(message)
        self._timer.start(int(wait * 1000))

    @Slot(int)
    def _on_exit(self, code: int) -> None:
        if self._stopped:
            return
        self.restarts += 1
        self.is_up = False
        self.attempt = self.attempt + 1 if time.monotonic() - self._up_since < STABLE_SECONDS else 0
        self.last_problem = f"the built-in server stopped (exit code {code})"
        wait = backoff(self.attempt + 1)
        log.warning("the built-in server stopped (exit code %s); restarting it in %g s", code, wait)
        self.down.emit(f"The built-in server stopped unexpectedly (exit code {code}). "
                       f"Restarting it in {wait:g} s…")
        self._timer.stop()
        self._timer.start(int(wait * 1000))
