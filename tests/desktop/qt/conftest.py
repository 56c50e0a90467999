"""Fixtures for the Qt layer: the real app's window against the real backend, offscreen."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from desktop.app import build_window
from desktop.core.settings import AppPaths
from desktop.qt.main_window import MainWindow
from tests.helpers.api import Api

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def no_network_on_the_gui_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[bool, str, str]]]:
    """Every request the app makes is recorded with whether it ran on the GUI (main) thread; none may."""
    calls: list[tuple[bool, str, str]] = []
    original = HTTPAdapter.send

    def send(self: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        if request.headers.get("User-Agent") == "creditdesk-desktop":
            calls.append((threading.current_thread() is threading.main_thread(), request.method, request.url))
        return original(self, request, *args, **kwargs)

    monkeypatch.setattr(HTTPAdapter, "send", send)
    yield calls
    assert [call for call in calls if call[0]] == [], "the app made network calls on the GUI thread"


def unique_email() -> str:
    return f"qt-{secrets.token_hex(5)}@example.com"


@pytest.fixture
def make_window(qtbot: Any, tmp_path: Path, memory_keyring: Any) -> Iterator[Callable[..., MainWindow]]:
    """Build the app's main window; each call is a fresh app run (same data folder unless ``home`` says)."""
    made: list[MainWindow] = []

    def make(backend_url: str | None, opener: Callable[[str, str], bool] | None = None, *, home: Path | None = None,
             poll: float = 0.2) -> MainWindow:
        paths = AppPaths.under(home or tmp_path / "home").ensure()
        window = build_window(paths, backend_url, opener or (lambda url, what: False), poll_first_delay=poll,
                              poll_max_delay=max(poll, 0.5))
        qtbot.addWidget(window)
        window.show()
        window.controller.start()
        made.append(window)
        return window

    yield make
    for window in made:
        shutdown(window)


def shutdown(window: MainWindow) -> None:
    if window.diagnostics is not None:
        window.diagnostics.done(0)
    if window.report_problem is not None:
        window.report_problem.done(0)
    if not window.isHidden():
        window.close()
    window.controller.shutdown()


def user_with_history(backend_url: str, spends: int = 55) -> Api:
    """A user who bought the Pro pack and spent 1 credit ``spends`` times: more history than one page."""
    api = Api(backend_url).register()
    requests.post(api.checkout("pro")["url"] + "/pay", timeout=10)
    for n in range(spends):
        api.post("/api/credits/spend", json={"amount": 1, "idempotencyKey": f"k{n}", "description": f"Job {n}"})
    return api


def sign_up(qtbot: Any, window: MainWindow, email: str | None = None) -> str:
    email = email or unique_email()
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in, timeout=20_000)
    window.sign_in.email.setText(email)
    window.sign_in.password.setText(PASSWORD)
    window.sign_in.create_button.click()
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.account, timeout=10_000)
    qtbot.waitUntil(lambda: len(window.account.cards) == 3, timeout=10_000)
    return email


@pytest.fixture(autouse=True)
def en_us_locale() -> Iterator[None]:
    """A known locale for what the tests read off the screen (the machine's may be C or anything)."""
    from PySide6.QtCore import QLocale

    previous = QLocale()
    QLocale.setDefault(QLocale(QLocale.Language.English, QLocale.Country.UnitedStates))
    yield
    QLocale.setDefault(previous)
