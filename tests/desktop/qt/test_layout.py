"""The window on small and scaled screens, and the history across refreshes."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from PySide6.QtCore import QItemSelectionModel

from desktop.core.settings import AppPaths
from tests.desktop.qt.conftest import PASSWORD, user_with_history
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess

ROOT = Path(__file__).resolve().parents[3]

# A 1440 x 900 screen at 150 %: 960 x 600 logical pixels.
SCALED_SCREEN = {"screens": [{"name": "laptop", "x": 0, "y": 0, "width": 1440, "height": 900, "logicalDpi": 144,
                              "dpr": 1.5}]}
PROBE = r"""
import json, sys
from PySide6.QtWidgets import QApplication
from desktop.app import build_window
from desktop.core.settings import AppPaths
app = QApplication(sys.argv)
window = build_window(AppPaths.under(__import__("pathlib").Path(sys.argv[1])).ensure(), "http://127.0.0.1:9")
window.show()
app.processEvents()
screen = window.screen().availableGeometry()
print(json.dumps({"screen": [screen.x(), screen.y(), screen.width(), screen.height()],
                  "window": [window.x(), window.y(), window.width(), window.height()],
                  "minimum": [window.minimumWidth(), window.minimumHeight()]}))
"""


@pytest.mark.subprocess
def test_the_window_fits_a_small_screen_at_150_percent(tmp_path: Path) -> None:
    config = tmp_path / "screen.json"
    config.write_text(json.dumps(SCALED_SCREEN))
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}"}
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "home")], env=env, capture_output=True,
                         text=True, timeout=60, cwd=ROOT, check=True)
    sizes = json.loads(out.stdout.strip().splitlines()[-1])
    sx, sy, sw, sh = sizes["screen"]
    x, y, w, h = sizes["window"]
    assert (sw, sh) == (960, 600)
    assert sx <= x and sy <= y and x + w <= sx + sw and y + h <= sy + sh, sizes
    assert sizes["minimum"][1] <= sh


def test_a_saved_geometry_bigger_than_the_screen_is_made_to_fit(qtbot: Any, make_window: Any, tmp_path: Path,
                                                               stub_backend: BackendProcess) -> None:
    first = make_window(stub_backend.url)
    first.resize(3000, 2000)
    first.move(2500, 1800)
    geometry = base64.b64encode(bytes(first.saveGeometry().data())).decode()
    first.close()
    paths = AppPaths.under(tmp_path / "home")
    first.controller.workers.disk.wait_for_done(5_000)
    settings = json.loads(paths.settings_file.read_text())
    settings["window_geometry"] = geometry
    paths.settings_file.write_text(json.dumps(settings))
    window = make_window(stub_backend.url)
    available = window.screen().availableGeometry()
    qtbot.waitUntil(lambda: available.contains(window.frameGeometry()), timeout=5_000)
    assert window.width() < 3000 and window.height() < 2000


def test_the_window_opens_where_it_was_left(qtbot: Any, make_window: Any, stub_backend: BackendProcess) -> None:
    """Restarted, the window is where it was closed, frame and all: it used to creep by its frame at each start
    (its saved inside placed as its frame's position). The first start may fit it to the screen."""
    seen = []
    for _ in range(4):
        window = make_window(stub_backend.url)
        qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in, timeout=20_000)  # noqa: B023
        qtbot.wait(50)
        seen.append(window.frameGeometry().getRect())
        assert window.screen().availableGeometry().contains(window.frameGeometry())
        window.close()  # (saves its geometry)
        window.controller.workers.disk.wait_for_done(5_000)
    assert seen[1] == seen[2] == seen[3], seen


def test_at_its_smallest_the_window_still_shows_several_history_rows(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess,
) -> None:
    api = Api(stub_backend.url).register()
    requests.post(api.checkout("pro")["url"] + "/pay", timeout=10)
    for n in range(10):
        api.post("/api/credits/spend", json={"amount": 1, "idempotencyKey": f"k{n}"})
    window = make_window(stub_backend.url)
    sign_in(qtbot, window, api.user["email"])
    qtbot.waitUntil(lambda: window.account.model.rowCount() == 11, timeout=10_000)
    cards = window.account.cards
    # the packs share the row's width (to a pixel of rounding)
    qtbot.waitUntil(lambda: min(c.width() for c in cards) > 200
                    and max(c.width() for c in cards) - min(c.width() for c in cards) <= 1)
    window.resize(window.minimumSize())
    table = window.account.table
    qtbot.waitUntil(lambda: table.viewport().height() // table.verticalHeader().defaultSectionSize() >= 6)


def sign_in(qtbot: Any, window: Any, email: str) -> None:
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in, timeout=20_000)
    window.sign_in.email.setText(email)
    window.sign_in.password.setText(PASSWORD)
    window.sign_in.sign_in_button.click()
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.account, timeout=10_000)


def test_a_refresh_keeps_the_older_pages_and_the_selection(qtbot: Any, make_window: Any,
                                                          stub_backend: BackendProcess) -> None:
    api = user_with_history(stub_backend.url)
    window = make_window(stub_backend.url)
    sign_in(qtbot, window, api.user["email"])
    model, table = window.account.model, window.account.table
    qtbot.waitUntil(lambda: model.rowCount() == 50, timeout=10_000)
    window.account.load_older.click()
    qtbot.waitUntil(lambda: model.rowCount() == 56, timeout=10_000)
    table.selectionModel().select(model.index(52, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect
                                  | QItemSelectionModel.SelectionFlag.Rows)
    selected = model.rows[52]

    api.post("/api/credits/spend", json={"amount": 2, "idempotencyKey": "new", "description": "Newest job"})
    window.refresh_action.trigger()
    qtbot.waitUntil(lambda: model.rowCount() == 57, timeout=10_000)
    assert model.index(0, 4).data() == "Newest job" and model.index(56, 0).data() == "Purchase"
    (row,) = {index.row() for index in table.selectionModel().selectedIndexes()}
    assert model.rows[row] == selected  # the same transaction is still selected
    assert not window.account.load_older.isVisible()  # the older pages are still all there
