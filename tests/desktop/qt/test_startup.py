"""The window paints first: what is not on screen at start is loaded and built after (bench/startup.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QWidget

from desktop.qt.after_paint import AfterFirstPaint

# Loaded after the window's first paint, a step per event-loop turn.
AFTER_PAINT = ["desktop.qt.sign_in", "desktop.qt.account_page", "desktop.qt.history_model", "desktop.qt.purchase_panel",
               "desktop.qt.spend_ui", "desktop.qt.spend_controller", "desktop.qt.notifier", "desktop.core.spend_models",
               "desktop.core.alert_inbox", "logging.handlers"]
# Loaded when first used: the HTTP stack and the keyring once the backend is there (on workers), the windows
# and dialogs when opened, Qt's SVG and network modules, the browser's launcher at a purchase.
WHEN_USED = ["requests", "urllib3", "keyring", "desktop.core.api", "desktop.core.diagnostics",
             "desktop.qt.diagnostics_dialog", "desktop.qt.usage_window", "desktop.qt.alerts_window",
             "desktop.qt.controls_window", "desktop.qt.spend_dialog", "PySide6.QtCharts", "PySide6.QtSvg",
             "PySide6.QtNetwork", "zoneinfo", "webbrowser", "subprocess", "uuid", "importlib.resources"]
# Loaded after the first paint, by its steps or at start (the updates' part), or when first used; not before it.
NOT_BEFORE_PAINT = ["desktop.core.updates", "desktop.qt.update_controller", "packaging.version", "html", "decimal",
                    "fractions", "desktop.qt.formatting", "desktop.core.pack_values", "resources.currencies"]
# Qt's Python types that take long to make (their enums): QStyle alone took 13 ms, Qt's namespace 28 ms. Made when
# first named (a QAction's shortcut= names Qt's namespace to choose between its overloads).
QT_TYPES_NOT_BEFORE_PAINT = ["QtWidgets.QStyle", "QtWidgets.QStyleOption", "QtCore.Qt"]

PROBE = """
import json, sys, time
from PySide6.QtWidgets import QApplication
from desktop.app import build_window
from desktop.core.settings import AppPaths

import PySide6
names = json.loads(sys.argv[1])
loaded = lambda: sorted(name for name in names if name in sys.modules)
made = lambda: sorted(name for name in json.loads(sys.argv[2])
                      if name.split(".")[1] in vars(getattr(PySide6, name.split(".")[0])))
app = QApplication([])
window = build_window(AppPaths.default().ensure(), "http://127.0.0.1:9")  # (not started: no backend needed)
window.show()
before = loaded()
types_before = made()
deadline = time.monotonic() + 30
while window.after_paint.remaining and time.monotonic() < deadline:
    app.processEvents()
print(json.dumps({"before": before, "after": loaded(), "types_before": types_before,
                  "remaining": window.after_paint.remaining,
                  "menus": [action.text() for action in window.menuBar().actions()]}))
"""


@pytest.mark.subprocess
def test_the_window_is_built_without_what_it_does_not_show(tmp_path: Path) -> None:
    """In a fresh process, as the app starts: building and showing the window loads none of these; the steps
    after its first paint load the pages and the Credits menu, and still not what waits to be used."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDITDESK_", "STRIPE_"))}
    env.update({"CREDITDESK_HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"})
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(AFTER_PAINT + WHEN_USED + NOT_BEFORE_PAINT),
                          json.dumps(QT_TYPES_NOT_BEFORE_PAINT)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["before"] == []
    assert seen["types_before"] == []
    assert seen["remaining"] == 0
    assert [name for name in seen["after"] if name not in NOT_BEFORE_PAINT] == sorted(AFTER_PAINT)
    assert seen["menus"] == ["&File", "&Buy", "&Credits", "&Help"]


class Steps:
    def __init__(self) -> None:
        self.ran: list[str] = []

    def step(self, name: str) -> Callable[[], None]:
        return lambda: self.ran.append(name)


class EatPaints(QObject):
    """A window's paint events stop here (as for a window that is never exposed)."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        return event.type() == QEvent.Type.Paint


def test_steps_run_after_the_first_paint_one_an_event_loop_turn(qtbot: Any) -> None:
    window = QWidget()
    qtbot.addWidget(window)
    after = AfterFirstPaint(window)
    steps = Steps()

    def a() -> None:
        steps.ran.append("a")
        QTimer.singleShot(0, steps.step("the next turn"))  # runs before b: b waits for a turn of its own

    after.add(a)
    after.add(steps.step("b"))
    after.add(steps.step("first"), first=True)
    window.show()
    assert steps.ran == []  # nothing before the paint
    qtbot.waitUntil(lambda: after.remaining == 0)
    qtbot.waitUntil(lambda: len(steps.ran) == 4)
    assert steps.ran == ["first", "a", "the next turn", "b"]
    after.add(steps.step("later"))  # added once started: runs at a next turn
    qtbot.waitUntil(lambda: steps.ran[-1:] == ["later"])


def test_finish_runs_what_is_left_at_once_and_cancel_drops_it(qtbot: Any) -> None:
    window = QWidget()
    qtbot.addWidget(window)
    after = AfterFirstPaint(window)
    steps = Steps()
    after.add(steps.step("a"))
    after.add(steps.step("b"))
    after.finish()
    assert steps.ran == ["a", "b"] and after.remaining == 0
    after.add(steps.step("c"))
    after.cancel()
    assert after.remaining == 0


def test_a_window_that_does_not_paint_runs_its_steps_a_moment_after_it_shows(qtbot: Any) -> None:
    window = QWidget()
    qtbot.addWidget(window)
    after = AfterFirstPaint(window)
    eater = EatPaints(window)
    window.installEventFilter(eater)  # (installed last, it sees the events first)
    steps = Steps()
    after.add(steps.step("a"))
    window.show()
    qtbot.waitUntil(lambda: steps.ran == ["a"], timeout=5_000)


def test_help_check_for_updates_works_before_the_update_controller_is_made(qtbot: Any, tmp_path: Path) -> None:
    """The updates' part is made at start, after the first paint; Help → Check for updates, chosen sooner, makes it
    and answers (a checkout's build names no update server)."""
    from desktop.app import build_window
    from desktop.core.settings import AppPaths

    window = build_window(AppPaths.under(tmp_path / "home").ensure(), "http://127.0.0.1:9")  # (not started)
    qtbot.addWidget(window)
    window.after_paint.cancel()
    assert window.controller.updates_made is None
    assert not window.revert_action.isEnabled()
    assert window.revert_action.statusTip() == "There is no previous version to go back to."
    window.check_updates_action.trigger()
    assert window.controller.updates_made is not None
    assert window.statusBar().currentMessage() == ("This build of the app does not update itself: its maker named "
                                                   "no update server.")
    window.controller.shutdown()


def test_the_starting_message_is_selectable_once_the_window_has_painted(qtbot: Any, tmp_path: Path) -> None:
    """(Made selectable after the first paint: Qt's text control takes 5-6 ms to set up.) A failure's words on the
    starting page can be selected and copied."""
    from PySide6.QtCore import Qt

    from desktop.app import build_window
    from desktop.core.settings import AppPaths

    window = build_window(AppPaths.under(tmp_path / "home").ensure(), "http://127.0.0.1:9")  # (not started)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.after_paint.remaining == 0, timeout=5_000)
    assert window.starting.label.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse
    window.controller.shutdown()
