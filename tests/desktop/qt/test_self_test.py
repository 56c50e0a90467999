"""``creditdesk --self-test`` from source: the Qt checks, and the whole command against a real backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from backend.api.app import create_app
from backend.config import Settings
from backend.services import Services
from desktop import app
from desktop.qt.platform_check import check_offscreen_start, check_platform_plugins, platform_plugins
from tests.helpers.backend import InProcessServer


@pytest.fixture
def backend_url(tmp_path: Path) -> Iterator[str]:
    services = Services.build(Settings(db_path=tmp_path / "backend.sqlite3"), "http://127.0.0.1:9")
    with InProcessServer(create_app(services)) as server:
        yield server.url


def test_the_app_starts_offscreen_with_every_module_of_its_windows(qapp: QApplication) -> None:
    result = check_offscreen_start()
    assert result.outcome == "ok", result.line()
    assert result.detail.startswith("Qt 6.") and " on offscreen, " in result.detail
    assert int(result.detail.split(", ")[-1].split()[0]) >= 20  # desktop.qt's modules, all imported


def test_the_platform_plugins_a_desktop_needs_load(qapp: QApplication) -> None:
    assert {"offscreen", "xcb"} <= set(platform_plugins())
    result = check_platform_plugins()
    assert result.outcome == "ok", result.line()
    assert result.detail.startswith("offscreen, xcb load (of ")


def test_a_platform_plugin_that_is_missing_fails_with_where_it_was_looked_for(qapp: QApplication) -> None:
    result = check_platform_plugins(("offscreen", "nosuchplatform"))
    assert result.failed
    assert result.line().startswith("qt platform plugins: FAILED: nosuchplatform: not found in ")


def test_the_self_test_command_prints_a_line_a_check(qapp: QApplication, backend_url: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CREDITDESK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert app.main(["--self-test", "--backend", backend_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"Creditdesk {app.version()} self-test: backend {backend_url}"
    assert [line.split(": ")[0] for line in lines[1:]] == ["start offscreen", "qt platform plugins", "data folder",
                                                           "backend health"]
    assert lines[3] == f"data folder: ok ({tmp_path / 'home' / 'data'})"
    assert lines[4].startswith(f"backend health: ok ({backend_url}, version ")
    assert all(line.split(": ", 1)[1].startswith("ok") for line in lines[1:]), lines


def test_the_self_test_fails_when_the_backend_does_not_answer(qapp: QApplication, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CREDITDESK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setenv("CREDITDESK_BACKEND_URL", "http://127.0.0.1:9")
    assert app.main(["--self-test"]) == 1
    out = capsys.readouterr().out
    assert "backend health: FAILED: http://127.0.0.1:9: " in out and "data folder: ok" in out
