"""Help → Diagnostics, and `creditdesk --diagnostics`: the facts support needs, and no secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from PySide6.QtGui import QGuiApplication

from tests.desktop.qt.conftest import sign_up
from tests.helpers.backend import BackendProcess
from tests.helpers.fakes import FakeBrowser


def test_the_panel_shows_the_report_without_secrets(qtbot: Any, make_window: Any, stub_backend: BackendProcess,
                                                    tmp_path: Path) -> None:
    window = make_window(stub_backend.url, FakeBrowser("pay"))
    email = sign_up(qtbot, window)
    window.account.cards[0].button.click()
    qtbot.waitUntil(lambda: window.purchase.flow.is_terminal, timeout=15_000)
    window.purchase_dialog.close_button.click()
    token = window.controller.api.token

    panel = window.show_diagnostics()
    qtbot.waitUntil(lambda: panel.copy_button.isEnabled(), timeout=10_000)
    report = json.loads(panel.text.toPlainText())
    assert report["backend"]["url"] == stub_backend.url and report["backend"]["reachable"] is True
    assert report["backend"]["payments"] == "stub" and report["backend"]["version"]
    assert report["account"]["signed_in"] is True and report["account"]["email"] != email
    assert report["account"]["email"].endswith("@example.com")
    assert report["app"]["qt"] and report["app"]["python"] and report["app"]["os"]
    assert report["keyring"]["persistent"] is True
    assert report["purchases"][0]["pack"] == "Starter" and report["purchases"][0]["status"] == "paid"
    assert report["paths"]["log"]
    assert any("purchase ended" in line for line in report["log"]["tail"])
    text = panel.text.toPlainText()
    assert token not in text and "correct horse" not in text and window.purchase.listener.state not in text

    panel.copy_button.click()
    assert QGuiApplication.clipboard().text() == panel.report_text
    target = tmp_path / "report.json"
    assert panel.save(str(target))
    assert json.loads(target.read_text()) == report
    assert not panel.save(str(tmp_path / "no-such-folder" / "r.json"))
    assert panel.status.text().startswith("Could not save the report")


def run_creditdesk(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDITDESK_", "STRIPE_"))}
    env.update({"CREDITDESK_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"})
    return subprocess.run([sys.executable, "-m", "desktop", *args], env=env, capture_output=True, text=True,
                          timeout=90)


def test_diagnostics_command_against_a_running_backend(stub_backend: BackendProcess, tmp_path: Path) -> None:
    result = run_creditdesk(["--diagnostics", "--backend", stub_backend.url], tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backend"]["url"] == stub_backend.url and report["backend"]["reachable"] is True
    assert report["backend"]["bundled"] is False
    assert report["account"]["signed_in"] is False
    assert report["paths"]["data"].startswith(str(tmp_path))


def test_diagnostics_command_with_the_bundled_backend(tmp_path: Path) -> None:
    result = run_creditdesk(["--diagnostics"], tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backend"]["bundled"] is True and report["backend"]["reachable"] is True
    assert report["backend"]["payments"] == "stub"


def test_a_bad_backend_url_is_a_clear_error(tmp_path: Path) -> None:
    result = run_creditdesk(["--diagnostics", "--backend", "ftp://nowhere"], tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("creditdesk: ") and "Traceback" not in result.stderr


def test_the_app_starts_and_stops_the_bundled_backend(qtbot: Any, make_window: Any) -> None:
    window = make_window(None)
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in, timeout=30_000)
    bundled = window.controller.bundled
    assert bundled is not None and bundled.running and window.controller.backend_url.startswith("http://127.0.0.1:")
    qtbot.waitUntil(lambda: "stub payments" in window.backend_label.text(), timeout=10_000)
    window.controller.shutdown()
    assert not bundled.running
