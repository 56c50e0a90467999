"""The creditdesk command's start-up checks."""

from __future__ import annotations

import sys

import pytest

from desktop import app


def test_missing_x11_libraries_are_named_with_their_packages(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setattr(app, "_loadable", lambda soname: soname != "libxcb-cursor.so.0")
    assert app.missing_display_libraries() == ["libxcb-cursor0"]
    assert app.run_app(None, None) == 1  # type: ignore[arg-type]
    assert "sudo apt install libxcb-cursor0" in capsys.readouterr().err
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert app.missing_display_libraries() == []
