"""The in-window notification (no system tray, as offscreen): how long it stays. Its timer is fired, not waited for."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QEnterEvent, QIcon, QMouseEvent
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
    notifier.show(TOPUP, actionable=True)  # a new notice while the pointer is over this one: it waits its turn
    assert toast.isVisible() and not toast.timer.isActive() and toast.title.text() == "Low balance"
    pointer(toast, over=False)  # read: a moment more (the next one is waiting), then it goes and the next comes
    assert toast.timer.isActive() and toast.timer.interval() == LINGER_MS
    toast.timer.timeout.emit()
    assert toast.isVisible() and toast.title.text() == "Auto top-up" and toast.timer.interval() == ACTION_TOAST_MS
    toast.timer.timeout.emit()
    assert not toast.isVisible()


def test_two_notices_at_once_are_both_seen_the_one_to_act_on_first(qtbot: Any) -> None:
    """Alerts that come in one poll (a low balance and a top-up's): none replaces another unseen."""
    _, notifier = window_with_notifier(qtbot)
    toast = notifier.toast
    expiring = Notice("Credits expiring", "9 credits (Welcome bonus) expire at the end of 13 Dec", ())
    notifier.show(NOTICE)
    notifier.show(expiring)
    notifier.show(TOPUP, actionable=True)
    assert toast.title.text() == "Low balance" and toast.timer.interval() <= LINGER_MS  # gives way after a moment
    seen = []
    while toast.isVisible():
        seen.append(toast.title.text())
        toast.timer.timeout.emit()
    assert seen == ["Low balance", "Auto top-up", "Credits expiring"]
    notifier.show(NOTICE)
    notifier.show(expiring)
    toast.mousePressEvent(QMouseEvent(QEvent.Type.MouseButtonPress, QPointF(5, 5), QPointF(5, 5),
                                      Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton,
                                      Qt.KeyboardModifier.NoModifier))
    assert not toast.isVisible() and not toast.waiting  # the inbox it opened has them all


def test_a_notice_that_offers_something_to_do_stays_longer(qtbot: Any) -> None:
    _, notifier = window_with_notifier(qtbot)
    notifier.show(TOPUP, actionable=True)  # a top-up's: clicking it opens Auto top-up, with its Undo
    assert notifier.toast.timer.interval() == ACTION_TOAST_MS > TOAST_MS
    notifier.show(NOTICE)  # waits, and the top-up's keeps its whole time
    assert notifier.toast.timer.interval() == ACTION_TOAST_MS and notifier.toast.title.text() == "Auto top-up"
    notifier.toast.timer.timeout.emit()
    assert notifier.toast.title.text() == "Low balance" and notifier.toast.timer.interval() == TOAST_MS
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
