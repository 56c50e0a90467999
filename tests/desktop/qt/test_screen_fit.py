"""Every window and dialog fits a 1366 x 768 screen at 100 %, 150 % and 200 % (683 x 384 logical pixels): it lies
within the screen's available area, every button it shows lies within it and is cut off by no parent, the action
buttons (Save, Close, Export CSV…) never scroll away, and the usage chart is shown whole (what cannot fit
scrolls inside its window).

The offscreen platform takes the screen from a file; its logical DPI (96 x the scale) gives Qt's scaling as X11's
Xft.dpi does. One process per scale opens every window in turn (tests/desktop/qt/screen_probe.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.desktop.qt.conftest import PASSWORD
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess

ROOT = Path(__file__).resolve().parents[3]
WIDTH, HEIGHT = 1366, 768

# The buttons that act on a window as a whole: always in view, never in the scrolled part.
ACTIONS = {
    "Main window: sign in": {"Sign in", "Create account"},
    "Main window: new password": {"Set new password", "Send another code", "Back to sign in"},
    "Report a problem": {"Send", "Save…", "Cancel"},
    "Billing details": {"Save", "Close"},
    "Use credits: confirm": {"Spend", "Close", "Confirm and spend 300"},
    "Usage": {"Export CSV…", "Close"},
    "Alerts": {"Close"},
    "Spend controls": {"Save", "Revert", "Close"},
    "Auto top-up": {"Turn on", "Turn off", "Buy and save card…", "Close"},
    "Diagnostics": {"Refresh", "Copy report", "Save report…", "Close"},
    "Help": {"Close"},
    "About": {"Close"},
}


def user_with_everything(url: str) -> Api:
    """A user with a purchase, spends under several features, spend controls with a history, and alerts."""
    api = Api(url).register()
    requests.post(api.checkout("pro")["url"] + "/pay", timeout=10)
    for n, feature in enumerate(["render", "export", "render", "transcribe", None, "render"]):
        r = api.post("/api/credits/spend", json={"amount": 40 + n, "idempotencyKey": f"k{n}", "feature": feature,
                                                  "description": f"Job {n} for the quarterly report"})
        assert r.status_code == 200, r.text
    for change in ({"caps": {"day": 5000, "week": 20000}}, {"confirmAbove": 250}, {"lowBalanceAlerts": [100000, 50]}):
        r = api.request("PUT", "/api/credits/controls", json=change)
        assert r.status_code == 200, r.text
    r = api.post("/api/credits/spend", json={"amount": 1, "idempotencyKey": "low", "description": "Below a level"})
    assert r.status_code == 200, r.text
    return api


def probe(tmp_path: Path, url: str, email: str, scale: float) -> dict[str, Any]:
    config = tmp_path / "screen.json"
    config.write_text(json.dumps({"screens": [{"name": "laptop", "x": 0, "y": 0, "width": WIDTH, "height": HEIGHT,
                                               "logicalDpi": 96 * scale}]}))
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}",
           "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    for name in ("QT_SCALE_FACTOR", "QT_SCREEN_SCALE_FACTORS", "QT_AUTO_SCREEN_SCALE_FACTOR", "CREDITDESK_DOCS_URL"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "tests.desktop.qt.screen_probe", str(tmp_path / "home"), url, email,
                           PASSWORD], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    warnings = [line for line in done.stderr.splitlines() if "This plugin does not support" not in line and line]
    assert warnings == [], warnings  # Qt's warnings fail, as in the in-process tests
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def over(dialog: list[int], main: list[int]) -> bool:
    """Whether a dialog is centred across the main window, as Qt places a dialog (which the fitting keeps; Use
    credits grows downwards with its refusal)."""
    x, _, w, _ = dialog
    mx, _, mw, _ = main
    return abs((x + w / 2) - (mx + mw / 2)) <= 2


def within(inner: list[int], outer: list[int]) -> bool:
    x, y, w, h = inner
    ox, oy, ow, oh = outer
    return ox <= x and oy <= y and x + w <= ox + ow and y + h <= oy + oh


@pytest.mark.subprocess
@pytest.mark.parametrize("scale", [1, 1.5, 2])
def test_every_window_fits_a_1366_by_768_screen(tmp_path: Path, stub_backend: BackendProcess, scale: float) -> None:
    api = user_with_everything(stub_backend.url)
    found = probe(tmp_path, stub_backend.url, api.user["email"], scale)
    assert found["screen"] == [0, 0, round(WIDTH / scale), round(HEIGHT / scale)]
    windows = found["windows"]
    assert set(windows) == set(ACTIONS) | {"Main window: account"}
    found_problems = problems(windows)
    assert not found_problems, "\n".join(map(str, found_problems))


def problems(windows: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every way a window does not fit, said at once."""
    found: list[tuple[Any, ...]] = []
    for name, window in windows.items():
        if not within(window["frame"], window["available"]):
            found.append((name, "off the screen", window["frame"], window["available"]))
        for text, button in window["buttons"].items():
            if button["clipped_by"] is not None:
                found.append((name, text, "cut off by", button["clipped_by"]))
            elif not button["scrolls"] and not (within(button["global"], window["inner"])
                                                and within(button["global"], window["available"])):
                found.append((name, text, "outside the window or the screen", button["global"], window["inner"]))
        for text in ACTIONS.get(name, ()):
            if text not in window["buttons"]:
                found.append((name, text, "not shown", sorted(window["buttons"])))
            elif window["buttons"][text]["scrolls"]:
                found.append((name, text, "scrolls away"))
        if not name.startswith("Main window") and not over(window["frame"], windows["Main window: account"]["frame"]):
            found.append((name, "not over the main window", window["frame"]))
    chart = windows["Usage"]["chart"]
    if chart["clipped_by"] is not None or not (chart["scrolls"] or within(chart["global"], windows["Usage"]["inner"])):
        found.append(("Usage", "the chart is cut", chart))
    if chart["size"][1] < chart["minimum"][1]:
        found.append(("Usage", "the chart is squashed", chart))
    return found
