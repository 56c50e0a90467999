"""The in-window notification (no system tray, as offscreen): how long it stays. Its timer is fired, not waited for."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QPointF
from PySide6.QtGui import QEnterEvent, QIcon
from PySide6.QtWidgets import QApplication, QMainWindow

from desktop.core.alert_inbox import Notice
from desktop.qt.notifier import ACTION_TOAST_MS, LINGER_MS, TOAST_MS, Notifier

NOTICE = Notice("Low balance", "Your balance is 99 credits, below your alert level of 100 credits.", ())
TOPUP = Notice("Auto top-up", "Auto top-up bought the Starter pack: 100 credits added. Undo within 24 hours "
                              "refunds what you have not spent of it.", ())


def window_with_notifier(qtbot: Any) -> tuple[QMainWindow, Notifier]:
    window = QMainWindow()
    qtbot.addWidget(window)
    window.resize(700, 500)
    window.show()
    return window, Notifier(window, QIcon(), use_tray=False)


def pointer(toast: Any, over: bool) -> None:
    at = QPointF(10, 10)
    QApplication.sendEvent(toast, QEnterEvent(at, at, toast.mapToGlobal(at)) if over else QEvent(QEvent.Type.Leave))


def test_a_notice_stays_while_the_pointer_is_over_it_and_goes_after(qtbot: Any) -> None:
    _, notifier = window_with_notifier(qtbot)
    toast = notifier.toast
    notifier.show(NOTICE)
    assert toast.isVisible() and toast.timer.isActive() and toast.timer.interval() == TOAST_MS
    pointer(toast, over=True)  # the user reads it
    assert not toast.timer.isActive()
    toast.timer.timeout.emit()  # (its time, had it kept running)
    assert toast.isVisible() and toast.message.text() == NOTICE.message
    notifier.show(TOPUP, actionable=True)  # a new notice while the pointer is over: it stays too
    assert toast.isVisible() and not toast.timer.isActive() and toast.title.text() == "Auto top-up"
    pointer(toast, over=False)  # read: what was left of its time (at least a moment), then it goes
    assert toast.timer.isActive() and toast.timer.interval() >= LINGER_MS
    toast.timer.timeout.emit()
    assert not toast.isVisible()


def test_a_notice_that_offers_something_to_do_stays_longer(qtbot: Any) -> None:
    _, notifier = window_with_notifier(qtbot)
    notifier.show(TOPUP, actionable=True)  # a top-up's: clicking it opens Auto top-up, with its Undo
    assert notifier.toast.timer.interval() == ACTION_TOAST_MS > TOAST_MS
    notifier.show(NOTICE)
    assert notifier.toast.timer.interval() == TOAST_MS
    notifier.toast.timer.timeout.emit()
    assert not notifier.toast.isVisible()
    pointer(notifier.toast, over=True)
    pointer(notifier.toast, over=False)  # passing over a hidden notice brings nothing back
    assert not notifier.toast.isVisible() and not notifier.toast.timer.isActive()


def test_a_notice_is_as_tall_as_its_words_without_a_gap_under_its_title(qtbot: Any) -> None:
    window, notifier = window_with_notifier(qtbot)
    window.resize(940, 720)  # the default window: the notice at its widest, its message in three lines
    toast = notifier.toast
    for notice in (TOPUP, NOTICE, TOPUP):  # each notice sized afresh, also after a shorter one
        notifier.show(notice)
        qtbot.waitUntil(lambda: toast.title.height() > 0)
        assert toast.title.height() == toast.title.sizeHint().height()  # one line: no spare height under it
        assert toast.message.height() >= toast.message.heightForWidth(toast.message.width())  # every line shown
        assert toast.height() == toast.heightForWidth(toast.width())
