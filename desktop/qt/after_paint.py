"""Work that waits until a window has painted: what is not on screen at start is built (or started) after the
user sees the window, not before.

Each step runs in an event-loop turn of its own, so that the GUI thread is never busy for long (each step
should take well under a frame); the first one runs once the window has painted for the first time, or
UNPAINTED_MS after it was shown if it has not painted by then (a window that starts hidden from view). Whoever
needs the steps done sooner calls :meth:`AfterFirstPaint.finish`, which runs what is left at once.
"""

from __future__ import annotations

import importlib
from collections import deque
from collections.abc import Callable
from functools import partial

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QWidget

UNPAINTED_MS = 300


class AfterFirstPaint(QObject):
    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self._window = window
        self._steps: deque[Callable[[], object]] = deque()
        self._started = False
        window.installEventFilter(self)

    @property
    def remaining(self) -> int:
        """Steps not run yet."""
        return len(self._steps)

    def add(self, step: Callable[[], object], *, first: bool = False) -> None:
        """Run ``step`` after the first paint, after the steps added before it (or before them: ``first``)."""
        if first:
            self._steps.appendleft(step)
        else:
            self._steps.append(step)
        if self._started and len(self._steps) == 1:
            QTimer.singleShot(0, self, self._next)

    def load(self, *modules: str) -> None:
        """Import ``modules`` after the first paint, one a step (to keep each step short, a module's imports
        can be named before it)."""
        for name in modules:
            self.add(partial(importlib.import_module, name))

    def finish(self) -> None:
        """Run the steps left now."""
        while self._steps:
            self._steps.popleft()()

    def cancel(self) -> None:
        """Drop the steps left (the window is closing)."""
        self._steps.clear()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._window:
            kind = event.type()
            if kind == QEvent.Type.Paint:
                self._start()
            elif kind == QEvent.Type.Show:
                QTimer.singleShot(UNPAINTED_MS, self, self._start)
        return False

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._window.removeEventFilter(self)
            QTimer.singleShot(0, self, self._next)

    def _next(self) -> None:
        try:
            if self._steps:
                self._steps.popleft()()
        finally:  # a step that fails (a bug: its traceback is printed) does not keep the others from running
            if self._steps:
                QTimer.singleShot(0, self, self._next)
