"""Windows that fit the screen they open on, at any scaling.

At 2x on a 1366 x 768 screen a window has 683 x 384 logical pixels, less the panels and its own frame. Every
top-level window and dialog of the app is fitted here, the same way:

- its size is at most the room on its screen: the screen's available area (without panels and docks) less the
  window manager's frame once that is known (X11 frames a window a moment after it is shown);
- it lies on that screen, frame included (a saved position from a screen that is gone comes back onto one);
- what cannot fit scrolls inside the window (:func:`scrolling`), its action buttons staying outside the
  scrolled part.

:func:`keep_on_screen` installs the fitting on a window: it runs as the window is shown, and once more when the
window manager has framed it.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPoint, QRect, QSize, QTimer
from PySide6.QtGui import QGuiApplication, QScreen
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget

PLACED = "creditdeskPlaced"  # a dynamic property: whether the app placed the window (see placed())


def mark_placed(window: QWidget, placed: bool) -> None:
    """Say whether the app placed ``window`` (restored its geometry), for its first show (:func:`keep_on_screen`
    forgets it then). The main window does, so that nothing before its first paint names Qt's namespace, as asking
    Qt (WA_Moved) would: its Python type takes 28 ms to make, with every enum of it."""
    window.setProperty(PLACED, placed)


def placed(window: QWidget) -> bool:
    """Whether ``window`` was placed (moved, or its geometry restored) rather than left to Qt or the window
    manager: what :func:`mark_placed` said, else Qt's own record of a move."""
    said = window.property(PLACED)
    if said is not None:
        return bool(said)
    from PySide6.QtCore import Qt

    return window.testAttribute(Qt.WidgetAttribute.WA_Moved)


def screen_of(window: QWidget) -> QScreen | None:
    """The screen ``window`` is on or opens on: where its frame's centre is once it is shown or placed (a restored
    geometry), else its parent's (a dialog opens over its parent), else the primary screen."""
    if window.isVisible() or placed(window):
        at = QGuiApplication.screenAt(window.frameGeometry().center())
        if at is not None:
            return at
    parent = window.parentWidget()
    if parent is not None and not window.isVisible():
        return parent.window().screen()
    return window.screen() or QGuiApplication.primaryScreen()


def available_area(window: QWidget) -> QRect:
    """The available geometry (logical pixels, without panels) of the screen ``window`` opens on."""
    screen = screen_of(window)
    return screen.availableGeometry() if screen is not None else QRect(0, 0, 640, 480)


def frame_known(window: QWidget) -> bool:
    """Whether the window manager's frame around ``window`` is known: once it is shown and framed (X11 frames a
    window a moment after it is shown; other platforms know at once, some have no frame)."""
    if not window.isVisible():
        return False
    outer, inner = window.frameGeometry(), window.geometry()
    return outer != inner or QGuiApplication.platformName() != "xcb"


def frame_extra(window: QWidget) -> QSize:
    """How much the window manager's frame adds to the window's size, once known; nothing until then (a guess
    would be wrong at some scale: a restored window would lose the difference at each start)."""
    outer, inner = window.frameGeometry(), window.geometry()
    return QSize(outer.width() - inner.width(), outer.height() - inner.height())


def room(window: QWidget) -> QSize:
    """The largest size ``window`` may have on its screen (its frame left out)."""
    area, frame = available_area(window), frame_extra(window)
    return QSize(max(1, area.width() - frame.width()), max(1, area.height() - frame.height()))


def fit(window: QWidget, preferred: QSize | None = None, minimum: QSize | None = None, *, place: bool = True) -> None:
    """Size ``window`` to ``preferred`` (or its size now) at most the room on its screen, its ``minimum`` size no
    larger than that room, and (unless ``place`` is false) move it, frame included, onto the screen's available
    area."""
    space = room(window)
    if minimum is not None:
        window.setMinimumSize(minimum.boundedTo(space))
    size = (preferred or window.size()).boundedTo(space).expandedTo(window.minimumSize())
    if size != window.size():
        window.resize(size)
    if not place or not frame_known(window):
        # Until the frame is known, a window's position (pos()) is its inside's while move() places its frame:
        # moving it then would shift it by the frame on each start (a restored geometry is Qt's to place).
        return
    area, frame = available_area(window), frame_extra(window)
    width, height = window.width() + frame.width(), window.height() + frame.height()
    corner = window.pos()  # a top-level window's position is its frame's
    x = max(area.left(), min(corner.x(), area.left() + area.width() - width))
    y = max(area.top(), min(corner.y(), area.top() + area.height() - height))
    if QPoint(x, y) != corner:
        window.move(x, y)


class _Fitter(QObject):
    def __init__(self, window: QWidget, preferred: QSize | None, minimum: QSize | None) -> None:
        super().__init__(window)
        self.window = window
        self.preferred = preferred
        self.minimum = minimum
        self.shown_once = False
        self.fitted_frame: QSize | None = None  # the frame the window was last fitted with, once known
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is not self.window:
            return False
        kind = event.type()
        if kind == QEvent.Type.Show:
            # The first time at the preferred size; later at the size the user left it (on this screen). A window
            # not placed by the app is placed by Qt next (a dialog over its parent) or by the window manager: it is
            # moved, if need be, in the next turn.
            self.fitted_frame = frame_extra(self.window) if frame_known(self.window) else None
            fit(self.window, None if self.shown_once else self.preferred, self.minimum,
                place=placed(self.window))
            self.window.setProperty(PLACED, None)  # what mark_placed said was for the first show; then Qt knows
            self.shown_once = True
            QTimer.singleShot(0, self, self.refit)
        elif kind in (QEvent.Type.Move, QEvent.Type.Resize) and self._frame_changed():
            self.refit()  # X11: the window manager has framed it (a move by the user changes no frame)
        return False

    def _frame_changed(self) -> bool:
        return self.window.isVisible() and frame_known(self.window) and frame_extra(self.window) != self.fitted_frame

    def refit(self) -> None:
        if self.window.isVisible():
            self.fitted_frame = frame_extra(self.window) if frame_known(self.window) else None
            fit(self.window, None, self.minimum)


def keep_on_screen(window: QWidget, preferred: QSize | None = None, minimum: QSize | None = None) -> None:
    """Fit ``window`` (at ``preferred`` size, at least ``minimum`` where the screen has room for it) to the
    screen it opens on, each time it is shown."""
    if preferred is not None:
        window.resize(preferred)
    _Fitter(window, preferred, minimum)


def scrolling(content: QWidget, name: str) -> QScrollArea:
    """``content`` in a frameless scroll area that scrolls only where the window is too small for it."""
    area = QScrollArea()
    area.setObjectName(name)
    area.setWidget(content)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    return area
