"""The default mode, as `make run` starts it: the bundled backend on a port of its own, a keyring that works.

Restarts keep the sign-in and the purchases in flight (they are filed under the backend's identity, not its
URL of the day); a backend that dies is restarted; a backend given by URL that does not answer is retried.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest
import requests

from desktop.core.identity import BackendIdentity
from desktop.core.purchase import FlowState
from desktop.core.purchase_records import PurchaseRecord, PurchaseRecords
from desktop.core.settings import AppPaths
from desktop.core.tokens import account_key
from desktop.qt import backend_connection, supervisor
from tests.desktop.qt.conftest import PASSWORD, sign_up
from tests.helpers.backend import BackendProcess
from tests.helpers.fakes import FakeBrowser


@pytest.mark.subprocess
def test_a_restart_keeps_the_sign_in_and_resumes_the_purchase(qtbot: Any, make_window: Any,
                                                             memory_keyring: Any) -> None:
    first = make_window(None, FakeBrowser("close_tab"), poll=60)
    email = sign_up(qtbot, first)
    identity = first.controller.backend.identity
    assert identity.bundled and identity.key.startswith("bundled:")
    first.account.cards[0].button.click()
    qtbot.waitUntil(lambda: bool(first.controller.purchases.items), timeout=5_000)
    purchase = first.controller.purchases.items[0]
    qtbot.waitUntil(lambda: purchase.flow.state is FlowState.WAITING, timeout=10_000)
    session_id, first_url = purchase.session_id, first.controller.backend.url
    qtbot.waitUntil(lambda: len(memory_keyring.entries) == 1, timeout=5_000)
    first.close()
    first.controller.shutdown()  # the app quits; its bundled backend stops with it

    second = make_window(None, FakeBrowser("close_tab"))
    qtbot.waitUntil(lambda: second.pages.currentWidget() is second.account, timeout=30_000)  # no password asked
    assert second.account.account.text() == f"Signed in as {email}"
    assert second.controller.backend.identity == identity
    assert second.controller.backend.url == first_url  # it took its port again: open checkout links still work
    qtbot.waitUntil(lambda: len(second.controller.purchases.items) == 1, timeout=10_000)
    resumed = second.controller.purchases.items[0]
    assert resumed.session_id == session_id and second.panels[resumed].isVisible()
    requests.post(f"{purchase.flow.checkout_url}/pay", timeout=10, allow_redirects=False)
    qtbot.waitUntil(lambda: resumed.flow.state is FlowState.PAID, timeout=15_000)
    qtbot.waitUntil(lambda: second.account.balance.text() == "100 credits", timeout=10_000)
    assert list(memory_keyring.entries) == [("creditdesk", account_key(identity.key, email))]  # one, not one a start


@pytest.mark.subprocess
def test_when_its_port_is_taken_the_bundled_backend_takes_another_and_keeps_its_identity(
    qtbot: Any, make_window: Any, memory_keyring: Any,
) -> None:
    first = make_window(None)
    email = sign_up(qtbot, first)
    port = int(first.controller.backend.url.rsplit(":", 1)[1])
    first.close()
    first.controller.shutdown()
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the old connections' TIME_WAIT
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        second = make_window(None)
        qtbot.waitUntil(lambda: second.pages.currentWidget() is second.account, timeout=30_000)
        assert second.controller.backend.url != first.controller.backend.url
        assert second.account.account.text() == f"Signed in as {email}"


@pytest.mark.subprocess
def test_stale_sign_ins_of_earlier_versions_are_removed(qtbot: Any, make_window: Any, memory_keyring: Any,
                                                        tmp_path: Path) -> None:
    """Earlier versions filed the bundled backend's sign-ins and purchases under its URL of the day."""
    home = tmp_path / "home"
    paths = AppPaths.under(home).ensure()
    email = "old-user@example.com"
    old_url = "http://127.0.0.1:41234"
    for port in (41234, 45678):
        memory_keyring.set_password("creditdesk", f"http://127.0.0.1:{port} {email}", f"stale-token-{port}")
    memory_keyring.set_password("creditdesk", f"http://127.0.0.1:8787 {email}", "someone-elses-server")
    records = PurchaseRecords(paths.purchase_records_file)
    records.add(PurchaseRecord(old_url, email, "cs_old", "starter", "Starter", 100))
    records.add(PurchaseRecord("http://127.0.0.1:45678", email, "cs_older", "starter", "Starter", 100,
                               status="expired"))
    paths.settings_file.write_text(json.dumps({"last_email": email}))

    window = make_window(None, home=home)
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in, timeout=30_000)
    assert window.sign_in.email.text() == email  # the old tokens belong to another database: sign in again
    window.sign_in.password.setText(PASSWORD)
    window.sign_in.create_button.click()
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.account, timeout=10_000)
    key = account_key(window.controller.backend.identity.key, email)
    qtbot.waitUntil(lambda: ("creditdesk", key) in memory_keyring.entries, timeout=10_000)
    # the stale ones are gone; a sign-in for somebody's own server on a fixed port is not ours to remove
    expected = {("creditdesk", f"http://127.0.0.1:8787 {email}"), ("creditdesk", key)}
    qtbot.waitUntil(lambda: set(memory_keyring.entries) == expected, timeout=10_000)
    window.controller.workers.disk.wait_for_done(5_000)
    refiled = window.controller.purchase_records.get("cs_old")
    assert refiled.backend_id == window.controller.backend.identity.key


@pytest.mark.subprocess
def test_sign_out_forgets_the_token(qtbot: Any, make_window: Any, memory_keyring: Any) -> None:
    window = make_window(None)
    sign_up(qtbot, window)
    qtbot.waitUntil(lambda: len(memory_keyring.entries) == 1, timeout=5_000)
    window.sign_out_action.trigger()
    qtbot.waitUntil(lambda: memory_keyring.entries == {}, timeout=5_000)
    window.close()
    window.controller.shutdown()
    again = make_window(None)
    qtbot.waitUntil(lambda: again.pages.currentWidget() is again.sign_in, timeout=30_000)


@pytest.mark.subprocess
def test_a_killed_bundled_backend_is_restarted_while_the_app_shows_stale_figures(
    qtbot: Any, make_window: Any, memory_keyring: Any,
) -> None:
    window = make_window(None, FakeBrowser("pay"))
    sign_up(qtbot, window)
    window.account.cards[0].button.click()
    qtbot.waitUntil(lambda: window.account.balance.text() == "100 credits", timeout=20_000)
    bundled = window.controller.backend.bundled
    assert bundled is not None and bundled.pid
    url, pid = window.controller.backend.url, bundled.pid

    os.kill(pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: window.account.stale.isVisible(), timeout=10_000)
    assert "Buying is off" in window.account.stale.text()
    assert window.account.balance.text() == "100 credits"  # the last figures, marked as not up to date
    assert not any(card.button.isEnabled() for card in window.account.cards)
    assert not any(action.isEnabled() for action in window.buy_actions)

    qtbot.waitUntil(lambda: bundled.running and bundled.pid != pid, timeout=30_000)
    qtbot.waitUntil(lambda: not window.account.stale.isVisible(), timeout=30_000)
    assert window.controller.backend.url == url and window.controller.backend.supervisor.restarts == 1
    assert all(card.button.isEnabled() for card in window.account.cards)
    assert window.backend_label.text().endswith("· connected")
    window.account.cards[0].button.click()  # and buying works again
    qtbot.waitUntil(lambda: window.account.balance.text() == "200 credits", timeout=20_000)


@pytest.mark.subprocess
def test_a_hung_bundled_backend_is_killed_and_restarted(
    qtbot: Any, make_window: Any, memory_keyring: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its process runs but answers nothing (stopped here with SIGSTOP): after a few probes it is restarted."""
    # Time is shortened, not waited for: the app's calls, its health checks and the probes give up after 1 s
    # instead of 10 s and 5 s, and the supervisor waits a tenth of its usual backoff between probes (51 s in all
    # before, 26-36 s with the health checks' own 5 s).
    monkeypatch.setattr(supervisor, "PROBE_TIMEOUT", 1.0)
    monkeypatch.setattr(backend_connection, "HEALTH_TIMEOUT", 1.0)
    monkeypatch.setattr(supervisor, "BACKOFF_SECONDS", tuple(s / 10 for s in supervisor.BACKOFF_SECONDS))
    window = make_window(None)
    sign_up(qtbot, window)
    window.controller.backend.api.timeout = 1.0
    bundled = window.controller.backend.bundled
    assert bundled is not None and bundled.pid
    url, pid = window.controller.backend.url, bundled.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        window.controller.figures.refresh()
        qtbot.waitUntil(lambda: window.account.stale.isVisible(), timeout=30_000)
        assert not any(card.button.isEnabled() for card in window.account.cards)
        qtbot.waitUntil(lambda: bundled.running and bundled.pid != pid, timeout=90_000)
        qtbot.waitUntil(lambda: not window.account.stale.isVisible(), timeout=30_000)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert window.controller.backend.url == url and window.controller.backend.supervisor.restarts == 1
    assert all(card.button.isEnabled() for card in window.account.cards)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.subprocess
def test_a_backend_url_that_does_not_answer_says_what_to_do_and_retries(
    qtbot: Any, make_window: Any, tmp_path: Path,
) -> None:
    port = free_port()
    window = make_window(f"http://127.0.0.1:{port}")
    qtbot.waitUntil(lambda: "Trying again in" in window.starting.label.text(), timeout=20_000)
    text = window.starting.label.text()
    assert "is not answering" in text and "--backend or CREDITDESK_BACKEND_URL" in text
    assert window.starting.retry_button.isVisible()
    (tmp_path / "late").mkdir()
    with BackendProcess(tmp_path / "late", port=port):  # the server is started at last
        window.starting.retry_button.click()
        qtbot.waitUntil(lambda: window.pages.currentWidget() is window.sign_in, timeout=30_000)


def test_the_identity_of_a_backend_given_by_url() -> None:
    assert BackendIdentity.for_url("HTTP://Example.COM:443/api/").key == "http://example.com:443/api"
    assert BackendIdentity.for_url("https://example.com:443/").key == "https://example.com"
    assert BackendIdentity.for_url("http://127.0.0.1:8787").key == "http://127.0.0.1:8787"
    assert BackendIdentity.for_bundled(Path("/a/b/backend.sqlite3")) == \
        BackendIdentity.for_bundled(Path("/a/b/../b/backend.sqlite3"))
    assert BackendIdentity.for_bundled(Path("/a/b/backend.sqlite3")) != \
        BackendIdentity.for_bundled(Path("/a/c/backend.sqlite3"))
