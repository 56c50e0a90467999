"""Running blocking work off the GUI thread.

Every network call of the app goes through :class:`TaskRunner`: the callable runs on a
``QThreadPool`` thread and its result (or exception) comes back to the GUI thread through a
queued signal, so the window never waits on the network.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

log = logging.getLogger("desktop.tasks")


class Task:
    """A handle on submitted work; ``cancel()`` drops its result (the call itself runs to its timeout)."""

    def __init__(self, task_id: int, on_done: Callable[[Any], None] | None,
                 on_error: Callable[[BaseException], None] | None) -> None:
        self.id = task_id
        self.on_done = on_done
        self.on_error = on_error
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Runnable(QRunnable):
    def __init__(self, runner: TaskRunner, task: Task, fn: Callable[[], Any]) -> None:
        super().__init__()
        self._runner = runner
        self._task = task
        self._fn = fn

    def run(self) -> None:
        try:
            result: Any = self._fn()
            ok = True
        except Exception as exc:
            result, ok = exc, False
        try:
            self._runner._finished.emit(self._task.id, ok, result)
        except RuntimeError:  # the runner was deleted meanwhile (its window closed): no one awaits the result
            log.debug("task %d finished after its runner was deleted", self._task.id)


class TaskRunner(QObject):
    """Submit callables with :meth:`run`; callbacks are called on the GUI thread."""

    busyChanged = Signal(bool)
    _finished = Signal(int, bool, object)

    def __init__(self, parent: QObject | None = None, max_threads: int = 4) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._ids = itertools.count(1)
        self._tasks: dict[int, Task] = {}
        self._connected = False

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    def run(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[BaseException], None] | None = None) -> Task:
        if not self._connected:
            # Connected at the first task, not when made (before the window's first paint): naming Qt's namespace
            # makes its Python type with every enum of it, about 28 ms.
            from PySide6.QtCore import Qt

            self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
            self._connected = True
        task = Task(next(self._ids), on_done, on_error)
        was_busy = self.busy
        self._tasks[task.id] = task
        if not was_busy:
            self.busyChanged.emit(True)
        self._pool.start(_Runnable(self, task, fn))
        return task

    @Slot(int, bool, object)
    def _deliver(self, task_id: int, ok: bool, result: Any) -> None:
        task = self._tasks.pop(task_id, None)
        if not self._tasks:
            self.busyChanged.emit(False)
        if task is None or task.cancelled:
            return
        callback = task.on_done if ok else task.on_error
        if callback is not None:
            callback(result)
        elif not ok:
            log.error("background task failed: %s", result)

    def wait_for_done(self, msecs: int = 30_000) -> bool:
        """Block until every running task has finished (at shutdown and in tests)."""
        return self._pool.waitForDone(msecs)
