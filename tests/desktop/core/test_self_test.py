"""``creditdesk --self-test``'s checks that need no Qt: the data folder and the backend's health."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.api.app import create_app
from backend.config import Settings
from backend.services import Services
from desktop.core.build_config import BuildConfig
from desktop.core.self_test import CheckResult, check_backend, check_data_folder, failed, ok, run_checks
from desktop.core.settings import AppPaths
from tests.helpers.backend import InProcessServer


@pytest.fixture
def backend_url(tmp_path: Path) -> Iterator[str]:
    """The real backend, in this process, on a loopback port."""
    services = Services.build(Settings(db_path=tmp_path / "backend.sqlite3"), "http://127.0.0.1:9")
    with InProcessServer(create_app(services)) as server:
        yield server.url


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_the_data_folder_is_made_written_and_left_clean(tmp_path: Path) -> None:
    paths = AppPaths.under(tmp_path / "home")
    result = check_data_folder(paths)
    assert result.line() == f"data folder: ok ({paths.data_dir})"
    for folder in (paths.data_dir, paths.config_dir, paths.log_dir):
        assert folder.is_dir() and list(folder.iterdir()) == []


def test_a_data_folder_that_cannot_be_made_fails_with_where_and_why(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "config").write_text("a file where the folder should be")
    result = check_data_folder(AppPaths.under(tmp_path / "home"))
    assert result.failed
    assert result.line().startswith(f"data folder: FAILED: {tmp_path / 'home' / 'config'}: ")


def test_the_configured_backend_answers_its_health(backend_url: str) -> None:
    result = check_backend(backend_url, BuildConfig(bundles_backend=False))
    assert result.outcome == "ok", result.line()
    assert result.line().startswith(f"backend health: ok ({backend_url}, version ")
    assert "payments stub" in result.line()


def test_a_backend_that_does_not_answer_fails_with_its_address() -> None:
    url = closed_port_url()
    result = check_backend(url, BuildConfig())
    assert result.failed and result.line().startswith(f"backend health: FAILED: {url}: ")


def test_a_build_without_a_backend_is_skipped_with_a_reason() -> None:
    result = check_backend(None, BuildConfig(bundles_backend=False))
    assert not result.failed
    assert result.line() == ("backend health: skipped: this build has no backend URL and bundles no backend; "
                             "give one with --backend URL or CREDITDESK_BACKEND_URL")


@pytest.mark.subprocess
def test_the_demo_build_starts_its_bundled_backend_for_the_check_and_stops_it(tmp_path: Path) -> None:
    result = check_backend(None, BuildConfig(bundles_backend=True))
    assert result.outcome == "ok", result.line()
    assert result.line().startswith("backend health: ok (bundled backend, http://127.0.0.1:")


def test_one_line_a_check_and_the_exit_code_says_whether_one_failed() -> None:
    def broken() -> CheckResult:
        raise RuntimeError("no such thing")

    out = io.StringIO()
    assert run_checks([("a", lambda: ok("a", "fine")), ("b", lambda: CheckResult("b", "skipped", "n/a"))], out) == 0
    assert out.getvalue() == "a: ok (fine)\nb: skipped: n/a\n"
    out = io.StringIO()
    assert run_checks([("a", lambda: failed("a", "it broke")), ("c", broken), ("d", lambda: ok("d"))], out) == 1
    assert out.getvalue() == "a: FAILED: it broke\nc: FAILED: RuntimeError: no such thing\nd: ok\n"
