"""The app's workers, shared by its parts, and what their failures say to the user.

Network and keyring work runs on :attr:`Workers.runner` (through :meth:`Workers.run`); the app's own files are
written on :attr:`Workers.disk`, one thread, in the order asked (through :meth:`Workers.write`). The callbacks
run on the GUI thread. A failure meant for the user goes out as a sentence through ``errorOccurred``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.core.models import ApiClientError, ApiError
from desktop.qt.tasks import Task, TaskRunner

log = logging.getLogger("desktop.controller")


def describe(error: BaseException) -> str:
    """A sentence for the user; never a traceback."""
    if isinstance(error, ApiError) and error.status == 429:
        wait = f" in {error.retry_after} seconds" if error.retry_after else " in a moment"
        return f"Too many attempts. Please try again{wait}."
    if isinstance(error, ApiClientError):
        return str(error)
    log.error("unexpected error: %r", error)
    return "Something went wrong. Details are in the log (Help → Diagnostics)."


class Workers(QObject):
    errorOccurred = Signal(str)  # a sentence for the status bar

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = TaskRunner(self)
        self.disk = TaskRunner(self, max_threads=1)  # the app's own files, written in order

    def run(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[BaseException], None] | None = None) -> Task:
        """Network and keyring work on a worker; the callbacks run on the GUI thread."""
        return self.runner.run(fn, on_done, on_error)

    def write(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None) -> Task:
        """The app's own files, on the one disk worker, in the order asked."""
        return self.disk.run(fn, on_done, self._disk_failed)

    def report(self, error: BaseException) -> None:
        """Tell the user (and the log) what went wrong."""
        message = describe(error)
        log.warning("%s", message)
        self.errorOccurred.emit(message)

    def wait_for_done(self, msecs: int) -> None:
        """Block until the work under way has finished, each pool up to ``msecs`` (at exit and in tests)."""
        self.runner.wait_for_done(msecs)
        self.disk.wait_for_done(msecs)

    def _disk_failed(self, error: BaseException) -> None:
        log.error("could not write the app's files: %s", error)
        self.errorOccurred.emit(f"Could not save the app's data: {error}")
