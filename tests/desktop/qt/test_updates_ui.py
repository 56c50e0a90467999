"""Updates in the app's window, offscreen, against a real signed update repository on loopback: what is new is
said before anything is installed, Not now is not asked again until the user asks, an update agreed during a
purchase waits for it to end, the sign-in made under the old version is there under the new one, and Help → Revert
to previous version goes back."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PySide6 import QtGui
from PySide6.QtGui import QTextDocumentFragment

from desktop.core import build_config, updates
from desktop.core.settings import AppPaths
from desktop.core.updates import UpdateLayout, UpdateState
from tests.desktop.qt.conftest import sign_up
from tests.helpers.backend import BackendProcess
from tests.helpers.update_repo import StaticServer, UpdateRepo, small_bundle


def test_an_update_is_offered_installed_after_the_purchase_and_reverted(
        qtbot: Any, make_window: Any, stub_backend: BackendProcess, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    repo = UpdateRepo.create(tmp_path / "release")
    with StaticServer(repo.repo) as server:
        bundle = small_bundle(tmp_path / "build-0.2.0", "0.2.0", server.url, repo.root_json)
        repo.release(bundle, "0.2.0", "Receipts name the buyer's country.")
        config = replace(build_config.BuildConfig(), version="0.1.0", update_url=server.url)
        monkeypatch.setattr(build_config, "current", lambda: config)
        monkeypatch.setattr(updates, "trusted_root_path", lambda: repo.root_json)
        paths = AppPaths.under(tmp_path / "home").ensure()
        layout = UpdateLayout.under(paths.data_dir)

        window = make_window(stub_backend.url)
        qtbot.waitUntil(lambda: window.update_box is not None and window.update_box.isVisible(), timeout=20_000)
        # Greyed out, saying why (Help shows its items' tooltips; the status bar its status tip on hover).
        assert not window.revert_action.isEnabled()
        assert window.revert_action.statusTip().startswith("No previous version is kept: this is the version that "
                                                           "was installed")
        # The tooltip says the same in rich text, which Qt wraps: as plain text it was one line across the screen.
        tip = window.revert_action.toolTip()
        assert QtGui.Qt.mightBeRichText(tip) and QTextDocumentFragment.fromHtml(tip).toPlainText() == \
            window.revert_action.statusTip()
        assert window.revert_action.menu() is None and window.menuBar().actions()[-1].menu().toolTipsVisible()
        box = window.update_box
        box.hide()
        email = sign_up(qtbot, window)
        box.show()
        assert "Creditdesk 0.2.0</b> is available" in box.text() and "Receipts name the buyer's country." in box.text()
        box.buttons()[1].click()  # Not now
        window.controller.updates.daily.timeout.emit()  # a day later: not asked again this session
        qtbot.waitUntil(lambda: not window.controller.updates._busy, timeout=10_000)
        assert not window.update_box.isVisible()

        in_flight = [True]
        window.controller.updates.purchase_in_flight = lambda: in_flight[0]
        window.check_updates_action.trigger()  # asked: offered again
        qtbot.waitUntil(lambda: window.update_box is not box and window.update_box.isVisible(), timeout=10_000)
        window.update_box.buttons()[0].click()  # Install, while a purchase is in flight
        assert window.statusBar().currentMessage() == ("Version 0.2.0 will be installed once your purchase has "
                                                       "ended.")
        assert not layout.state_file.exists()
        in_flight[0] = False
        window.controller.updates.wait_timer.timeout.emit()
        qtbot.waitUntil(lambda: layout.state_file.exists(), timeout=20_000)
        qtbot.waitUntil(lambda: "runs the next time" in window.statusBar().currentMessage(), timeout=10_000)
        assert UpdateState.load(layout.state_file).current == "0.2.0"
        assert not window.revert_action.isEnabled()  # 0.1.0 runs: nothing to go back to yet
        qtbot.waitUntil(lambda: window.revert_action.statusTip() == (
            "Version 0.2.0 was just installed and runs from the next start; going back is possible once it runs."),
                        timeout=10_000)
        # Checking again before the next start says it is installed; it does not offer to install it again.
        offered = window.update_box
        window.check_updates_action.trigger()
        qtbot.waitUntil(lambda: window.statusBar().currentMessage() == (
            "Version 0.2.0 is installed: it runs the next time you start the app."), timeout=10_000)
        assert window.update_box is offered and not offered.isVisible()
        window.close()

        # The next start runs 0.2.0 (the launcher's part: tests/desktop/core/test_updates.py), from 0.1.0's bundle.
        monkeypatch.setattr(build_config, "current", lambda: replace(config, version="0.2.0"))
        monkeypatch.setenv(updates.LAUNCHED_ENV, "0.1.0")
        window = make_window(stub_backend.url)
        qtbot.waitUntil(lambda: window.revert_action.isEnabled(), timeout=10_000)
        # The same user folders: still signed in (the keyring and its index are the user's, not the version's).
        qtbot.waitUntil(lambda: window.pages.currentWidget() is window.account, timeout=20_000)
        assert window.controller.session.email == email
        assert window.revert_action.text() == "Re&vert to previous version (0.1.0)…"
        assert window.revert_action.statusTip() == "Go back to version 0.1.0 from the next start."
        assert QTextDocumentFragment.fromHtml(window.revert_action.toolTip()).toPlainText() == \
            window.revert_action.statusTip()
        box = window.revert_to_previous()
        assert box is not None and "Go back to version 0.1.0" in box.text()
        box.buttons()[0].click()
        qtbot.waitUntil(lambda: UpdateState.load(layout.state_file).current is None, timeout=10_000)
        assert UpdateState.load(layout.state_file).held_back == ("0.2.0",)
