"""Help → Diagnostics, and `creditdesk --diagnostics`: the facts support needs, and no secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog

from desktop.core.bundled_backend import running_url
from desktop.core.purchase import FlowState
from tests.desktop.qt.conftest import PASSWORD, sign_up
from tests.helpers.backend import BackendProcess
from tests.helpers.fakes import FakeBrowser, FileKeyring

NON_ASCII_EMAIL = "jürgen.müller-{}@bücher.example"


def buy_and_pay(qtbot: Any, window: Any, card: int = 0) -> Any:
    window.account.cards[card].button.click()
    qtbot.waitUntil(lambda: bool(window.controller.purchases.items), timeout=5_000)
    purchase = window.controller.purchases.items[-1]
    qtbot.waitUntil(lambda: purchase.flow.state is FlowState.PAID, timeout=15_000)
    return purchase


def save_through_the_dialog(qtbot: Any, panel: Any, path: Path) -> None:
    """Press "Save report…", type a file name in the (window-modal) file dialog, press Save."""
    panel.save_button.click()
    dialog = panel.file_dialog
    assert isinstance(dialog, QFileDialog) and dialog.isVisible()
    dialog.selectFile(str(path))
    dialog.accept()


def test_the_panel_answers_where_are_my_credits_without_secrets(
    qtbot: Any, make_window: Any, stub_backend: BackendProcess, tmp_path: Path,
) -> None:
    window = make_window(stub_backend.url, FakeBrowser("pay"), poll=60)  # the hand-off confirms it: no poll due
    email = sign_up(qtbot, window, NON_ASCII_EMAIL.format(os.getpid()))
    purchase = buy_and_pay(qtbot, window)
    token = window.controller.backend.api.token
    state = purchase.listener.state

    panel = window.show_diagnostics()
    qtbot.waitUntil(lambda: panel.copy_button.isEnabled(), timeout=15_000)
    text = panel.text.toPlainText()
    for section in ("App", "Backend", "Account", "Purchases (newest first)", "Recent errors", "Folders"):
        assert f"\n{section}\n" in text, section
    assert "Balance:               100 credits" in text
    assert f"order {purchase.order_id} · session {purchase.session_id}" in text
    assert "status here: paid · at the backend now: paid (100 credits granted)" in text
    for event in ("created", "browser opened", "returned (paid)", "paid", "credited"):
        assert f"  {event}" in text, event
    ledger = text.split("Recent ledger (newest first):\n")[1].splitlines()[0].split()
    assert ledger[1:5] == ["purchase", "+100", "→", "100"]
    assert " ".join(ledger[5:]).startswith(f"Starter pack, paid $5.00, order {purchase.order_id}")
    for secret in (token, PASSWORD, state, email, email.split("@")[0]):
        assert secret not in text

    panel.copy_button.click()
    report = json.loads(QGuiApplication.clipboard().text())  # Copy gives support's tools the JSON
    assert report["account"]["balance"] == 100 and report["account"]["email"] == "j***@bücher.example"
    (bought,) = report["purchases"]
    assert bought["order_id"] == purchase.order_id and bought["at_backend"]["status"] == "paid"
    events = [e["event"] for e in bought["timeline"]]  # in the order they happened
    assert sorted(events) == ["browser_opened", "created", "credited", "paid", "returned"]
    assert events[:2] == ["created", "browser_opened"] and events.index("returned") < events.index("paid")
    assert report["account"]["ledger"][0]["reference"] == purchase.session_id

    target = tmp_path / "report.txt"
    save_through_the_dialog(qtbot, panel, target)
    qtbot.waitUntil(lambda: target.exists() and panel.status.text() == f"Saved to {target}.", timeout=10_000)
    assert target.read_text(encoding="utf-8") == panel.report_text
    as_json = tmp_path / "report.json"
    save_through_the_dialog(qtbot, panel, as_json)
    qtbot.waitUntil(lambda: panel.status.text() == f"Saved to {as_json}.", timeout=10_000)
    assert json.loads(as_json.read_text())["purchases"][0]["session_id"] == purchase.session_id
    panel.save(str(tmp_path / "no-such-folder" / "r.txt"))
    qtbot.waitUntil(lambda: panel.status.text().startswith("Could not save the report"), timeout=10_000)

    log = window.controller.paths.log_file.read_text(encoding="utf-8")
    assert email not in log and email.split("@")[0] not in log and "j***@bücher.example" in log


def test_a_failed_purchase_start_is_in_the_errors(qtbot: Any, make_window: Any, backend_factory: Any) -> None:
    backend = backend_factory()
    window = make_window(backend.url, FakeBrowser("close_tab"))
    sign_up(qtbot, window)
    backend.stop()
    window.account.cards[0].button.click()
    qtbot.waitUntil(lambda: bool(window.controller.purchases.items), timeout=5_000)
    qtbot.waitUntil(lambda: window.controller.purchases.items[0].flow.state is FlowState.FAILED, timeout=20_000)
    panel = window.show_diagnostics()
    qtbot.waitUntil(lambda: panel.copy_button.isEnabled(), timeout=15_000)
    errors = panel.text.toPlainText().split("\nRecent errors\n")[1]
    assert "a purchase could not start: pack=starter" in errors and "not answering" in errors


def run_creditdesk(args: list[str], home: Path, env: dict[str, str] | None = None,
                   ) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CREDITDESK_", "STRIPE_"))}
    clean.update({"CREDITDESK_HOME": str(home), "QT_QPA_PLATFORM": "offscreen", **(env or {})})
    return subprocess.run([sys.executable, "-m", "desktop", *args], env=clean, capture_output=True, text=True,
                          timeout=90)


def test_diagnostics_command_against_a_running_backend(stub_backend: BackendProcess, tmp_path: Path) -> None:
    result = run_creditdesk(["--diagnostics", "--backend", stub_backend.url], tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backend"]["url"] == stub_backend.url and report["backend"]["reachable"] is True
    assert report["backend"]["bundled"] is False and report["backend"]["identity"] == stub_backend.url
    assert report["account"]["signed_in"] is False
    assert report["paths"]["data"].startswith(str(tmp_path))


@pytest.mark.subprocess
def test_diagnostics_command_with_the_bundled_backend(tmp_path: Path) -> None:
    result = run_creditdesk(["--diagnostics"], tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backend"]["bundled"] is True and report["backend"]["reachable"] is True
    assert report["backend"]["payments"] == "stub" and report["backend"]["identity"].startswith("bundled:")


@pytest.mark.subprocess
def test_diagnostics_command_uses_the_running_apps_backend_and_knows_the_account(
    qtbot: Any, make_window: Any, tmp_path: Path, file_keyring: FileKeyring,
) -> None:
    """While the app runs (bundled backend, default mode), --diagnostics reports on that backend, not a second
    one, and on the account signed in there."""
    window = make_window(None, FakeBrowser("pay"))
    sign_up(qtbot, window)
    purchase = buy_and_pay(qtbot, window)
    window.controller.workers.disk.wait_for_done(5_000)
    qtbot.waitUntil(lambda: len(file_keyring.entries) == 1, timeout=5_000)
    home = window.controller.paths.data_dir.parent
    result = run_creditdesk(["--diagnostics"], home, file_keyring.env())
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backend"]["url"] == window.controller.backend.url == running_url(window.controller.paths.data_dir)
    assert report["backend"]["identity"] == window.controller.backend.identity.key
    assert report["account"]["signed_in"] is True and report["account"]["balance"] == 100
    assert report["purchases"][0]["session_id"] == purchase.session_id
    assert report["purchases"][0]["at_backend"] == {"status": "paid", "credits_granted": 100}
    assert window.controller.backend.api.token not in result.stdout


@pytest.mark.subprocess
def test_a_bad_backend_url_is_a_clear_error(tmp_path: Path) -> None:
    result = run_creditdesk(["--diagnostics", "--backend", "ftp://nowhere"], tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("creditdesk: ") and "Traceback" not in result.stderr


@pytest.mark.subprocess
def test_version(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_creditdesk(["--version"], tmp_path)
    assert result.returncode == 0 and result.stdout == "creditdesk 0.1.0\n"
    assert time.monotonic() - started < 30


def test_about_shows_the_version(qtbot: Any, make_window: Any, stub_backend: BackendProcess) -> None:
    window = make_window(stub_backend.url)
    window.about_action.trigger()
    box = window.about_box
    assert box is not None and box.isVisible() and "Creditdesk 0.1.0" in box.text()
    box.close()


@pytest.mark.subprocess
def test_the_app_starts_and_stops_the_bundled_backend(qtbot: Any, make_window: Any) -> None:
    window = make_window(None)
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in, timeout=30_000)
    bundled = window.controller.backend.bundled
    assert bundled is not None and bundled.running and window.controller.backend.url.startswith("http://127.0.0.1:")
    qtbot.waitUntil(lambda: "stub payments" in window.backend_label.text(), timeout=10_000)
    window.controller.shutdown()
    assert not bundled.running
