"""The bundled backend as a child process: stub mode, loopback, its own database and log."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from desktop.core.api import ApiClient
from desktop.core.bundled_backend import BundledBackend, BundledBackendError
from tests.helpers.api import Api
from tests.helpers.outbox import latest_code


@pytest.mark.subprocess
def test_starts_in_stub_mode_and_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Stripe settings in the user's environment must not reach the bundled backend (without the webhook
    # secret it would refuse to start; with it, it would sell for real).
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_notarealkey")
    monkeypatch.setenv("CREDITDESK_PUBLIC_URL", "https://elsewhere.example")
    backend = BundledBackend(tmp_path / "data", tmp_path / "log")
    assert "STRIPE_SECRET_KEY" not in backend.environment()
    try:
        url = backend.start()
        assert url.startswith("http://127.0.0.1:")
        assert backend.url == url and backend.payments == "stub"
        assert backend.running
        api = ApiClient(url)
        assert api.health().payments == "stub"
        api.register("bundled@example.com", "correct horse battery")
        session = api.checkout("starter")
        assert session.url.startswith(url)  # not CREDITDESK_PUBLIC_URL
        assert (tmp_path / "data" / "backend.sqlite3").exists()
        assert (tmp_path / "log" / "backend.log").exists()
    finally:
        backend.stop()
    assert not backend.running
    backend.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/api/health", timeout=2)
    assert "Stub payments mode" in (tmp_path / "log" / "backend.log").read_text()


@pytest.mark.subprocess
def test_its_mail_is_in_the_outbox_folder_the_app_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No mail server: a password reset code is an .eml file where ``outbox`` says (the reset form names it)."""
    monkeypatch.delenv("CREDITDESK_SMTP_HOST", raising=False)
    monkeypatch.delenv("CREDITDESK_MAIL_OUTBOX", raising=False)
    backend = BundledBackend(tmp_path / "data", tmp_path / "log")
    assert backend.outbox == tmp_path / "data" / "outbox"
    try:
        api = ApiClient(backend.start())
        api.register("bundled@example.com", "correct horse battery")
        sent = api.request_password_reset("bundled@example.com")
        assert sent.message.startswith("If an account exists for this email") and sent.expires_in_seconds == 900
        latest_code(backend.outbox, "bundled@example.com")  # mailed just after the answer, by the mail queue
        (mail,) = backend.outbox.glob("*.eml")
        assert "To: bundled@example.com" in mail.read_text()
    finally:
        backend.stop()
    monkeypatch.setenv("CREDITDESK_MAIL_OUTBOX", str(tmp_path / "mail"))
    assert backend.outbox == tmp_path / "mail"
    monkeypatch.setenv("CREDITDESK_SMTP_HOST", "smtp.example.com")
    assert backend.outbox is None


@pytest.mark.subprocess
def test_a_backend_that_cannot_start_reports_its_log(tmp_path: Path) -> None:
    backend = BundledBackend(tmp_path, extra_env={"CREDITDESK_PACKS": str(tmp_path / "missing.toml")})
    with pytest.raises(BundledBackendError) as caught:
        backend.start()
    message = str(caught.value)
    assert "did not start" in message and "exited with code" in message
    assert "cannot read the pack catalogue" in message
    assert not backend.running


@pytest.mark.subprocess
def test_stop_while_starting_ends_start_promptly(tmp_path: Path) -> None:
    # A "backend" that never says where it listens.
    backend = BundledBackend(tmp_path, python=sys.executable, startup_timeout=30)
    backend.command = lambda port=0: [sys.executable, "-c", "import time; time.sleep(60)"]  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def run() -> None:
        try:
            backend.start()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    started = time.monotonic()
    thread.start()
    time.sleep(0.5)
    backend.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 10
    assert errors and isinstance(errors[0], BundledBackendError)
    assert not backend.running


@pytest.mark.subprocess
def test_silent_backend_times_out(tmp_path: Path) -> None:
    backend = BundledBackend(tmp_path, startup_timeout=0.5)
    backend.command = lambda port=0: [sys.executable, "-c", "import time; time.sleep(60)"]  # type: ignore[method-assign]
    with pytest.raises(BundledBackendError) as caught:
        backend.start()
    assert "within 0.5 s" in str(caught.value)
    assert not backend.running


@pytest.mark.subprocess
def test_core_imports_neither_qt_nor_the_backend() -> None:
    code = (
        "import sys, pkgutil, importlib, desktop.core as core\n"
        "for m in pkgutil.iter_modules(core.__path__): importlib.import_module('desktop.core.' + m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('PySide6', 'backend', 'shiboken6'))\n"
        "print(bad)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"


@pytest.mark.subprocess
def test_the_bundled_backend_does_not_outlive_a_crashed_app(tmp_path: Path) -> None:
    """The app is killed outright (no clean-up runs): its backend notices its stdin close and stops."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from desktop.core.bundled_backend import BundledBackend\n"
        f"backend = BundledBackend(Path({str(tmp_path)!r}))\n"
        "backend.start()\n"
        "print(backend.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    app = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert app.stdout is not None
    pid = int(app.stdout.readline())
    app.kill()
    app.wait()
    app.stdout.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError("the bundled backend kept running after the app died")


def wait_until_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        time.sleep(0.05)
    return False


@pytest.mark.subprocess
def test_released_with_a_checkout_open_it_serves_it_until_it_is_paid_then_stops(tmp_path: Path) -> None:
    """The app quit with a purchase in flight: the checkout page it opened still works, and shows the outcome."""
    backend = BundledBackend(tmp_path)
    try:
        url = backend.start()
        pid = backend.pid
        assert pid is not None
        api = Api(url).register()
        checkout_url = api.checkout("standard")["url"]
        backend.release()
        time.sleep(2)  # more than it takes to stop when nothing is open
        assert requests.get(checkout_url, timeout=5).status_code == 200
        paid = requests.post(f"{checkout_url}/pay", timeout=10)  # the browser follows to the outcome page
        assert paid.status_code == 200 and "550 credits were added" in paid.text
        assert wait_until_gone(pid, 10), "it kept running once nothing was open"
        assert "serving 1 open checkout(s)" in (tmp_path / "backend.log").read_text()
    finally:
        backend.stop()


@pytest.mark.subprocess
def test_released_with_nothing_open_it_stops_at_once(tmp_path: Path) -> None:
    backend = BundledBackend(tmp_path)
    try:
        backend.start()
        pid = backend.pid
        assert pid is not None
        backend.release()
        assert wait_until_gone(pid, 5)
    finally:
        backend.stop()


@pytest.mark.subprocess
def test_the_next_start_stops_a_lingering_backend_and_takes_its_port(tmp_path: Path) -> None:
    first = BundledBackend(tmp_path)
    second = BundledBackend(tmp_path)  # the app started again
    try:
        url = first.start()
        pid = first.pid
        assert pid is not None
        checkout_url = Api(url).register().checkout("starter")["url"]
        first.release()
        assert second.start() == url  # the same port: the checkout link keeps working
        assert wait_until_gone(pid, 1)
        assert second.pid != pid
        assert requests.get(checkout_url, timeout=5).status_code == 200
    finally:
        first.stop()
        second.stop()
