"""Opening the system browser: quietly, and knowing when it failed."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from desktop.core.browser import open_in_browser

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="xdg-open is the Linux desktop's")


def fake_xdg_open(folder: Path, body: str) -> Path:
    """An ``xdg-open`` first on PATH: the desktop's launcher, as the tests need it to behave."""
    script = folder / "xdg-open"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


@pytest.mark.subprocess
def test_the_browsers_output_stays_out_of_the_terminal(bin_dir: Path, tmp_path: Path,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    opened = tmp_path / "opened"
    fake_xdg_open(bin_dir, f'echo "[1234:ERROR:gpu_init.cc] noise" >&2; echo noise; echo "$1" > {opened}')
    assert open_in_browser("http://127.0.0.1:9/checkout") is True
    assert opened.read_text().strip() == "http://127.0.0.1:9/checkout"
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


@pytest.mark.subprocess
def test_a_launcher_that_fails_is_noticed_and_the_log_says_what_did_not_open(
    bin_dir: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    fake_xdg_open(bin_dir, "echo 'no method available for opening' >&2; exit 3")
    assert open_in_browser("http://127.0.0.1:9/checkout") is False
    assert open_in_browser("file:///tmp/guide.html", "the documentation") is False
    warnings = [r.getMessage() for r in caplog.records if r.name == "creditdesk.browser"]
    assert warnings == ["xdg-open could not open the page (exit code 3)",
                        "xdg-open could not open the documentation (exit code 3)"]  # not "the checkout page"


@pytest.mark.subprocess
def test_a_browser_that_keeps_the_launcher_waiting_counts_as_opened(bin_dir: Path) -> None:
    fake_xdg_open(bin_dir, "sleep 30")  # some desktops run the browser in the foreground of xdg-open
    assert open_in_browser("http://127.0.0.1:9/checkout", wait=0.3) is True


def test_no_launcher_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert open_in_browser("http://127.0.0.1:9/checkout", "the receipt") is False
