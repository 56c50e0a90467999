"""The app's log: every logger of the app goes to the file, redacted, and none to the terminal."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from desktop.core.logs import setup_logging


def test_the_cores_and_the_windows_loggers_go_to_the_file_only(tmp_path: Path,
                                                              capfd: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "log" / "creditdesk.log"
    recent = setup_logging(log_file)
    logging.getLogger("creditdesk.bundled_backend").warning("the bundled backend exited unexpectedly (code -9)")
    logging.getLogger("desktop.purchase").info("signed in as jürgen.müller@bücher.de with Bearer abc.def.ghi")
    for handler in logging.getLogger("desktop").handlers:
        handler.flush()
    text = log_file.read_text(encoding="utf-8")
    assert "exited unexpectedly" in text and "j***@bücher.de" in text
    assert "jürgen" not in text and "abc.def.ghi" not in text
    assert any("exited unexpectedly" in message for message in recent.messages())
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
