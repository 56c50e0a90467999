"""The loopback listener: loopback only, state checked, one-shot, escaped, quiet."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import requests

from desktop.core.callback import CallbackResult, LoopbackListener


@pytest.fixture
def listener() -> Iterator[LoopbackListener]:
    with LoopbackListener(timeout_seconds=60) as started:
        yield started


def get(listener: LoopbackListener, path: str = "/callback", **params: str) -> requests.Response:
    url = f"http://127.0.0.1:{listener.port}{path}"
    if params:
        url += "?" + urlencode(params)
    return requests.get(url, timeout=5)


def test_binds_ipv4_loopback_on_an_ephemeral_port(listener: LoopbackListener) -> None:
    host, port = listener.server_address
    assert host == "127.0.0.1"
    assert 0 < port < 65536
    assert listener.return_url == f"http://127.0.0.1:{port}/callback"
    assert len(listener.state) >= 43  # 32 random bytes
    assert LoopbackListener().state != listener.state
    assert listener.state not in repr(listener)


def test_a_valid_callback_is_delivered_once_and_closes_the_listener() -> None:
    heard: list[CallbackResult] = []
    threads: list[str] = []

    def on_result(result: CallbackResult) -> None:
        heard.append(result)
        threads.append(threading.current_thread().name)

    with LoopbackListener(on_result=on_result) as listener:
        answer = get(listener, session_id="cs_stub_123", state=listener.state, status="paid")
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
        assert answer.headers["Cache-Control"] == "no-store"
        assert "Creditdesk received this checkout" in answer.text
        assert "cs_stub_123" in answer.text
        assert listener.state not in answer.text
        result = listener.wait(5)
        assert result == CallbackResult("cs_stub_123", "paid", state_ok=True)
        assert listener.closed
        deadline = time.monotonic() + 5
        while not heard and time.monotonic() < deadline:
            time.sleep(0.01)
        assert heard == [result]
        assert threads[0] != threading.main_thread().name
        # One-shot: the port is closed now.
        with pytest.raises(requests.ConnectionError):
            get(listener, session_id="cs_stub_123", state=listener.state, status="paid")
    assert heard == [result]


def test_wrong_state_is_refused_and_the_listener_keeps_waiting(listener: LoopbackListener) -> None:
    wrong = get(listener, session_id="cs_1", state="not-the-state", status="paid")
    assert wrong.status_code == 400
    assert wrong.headers["Content-Type"] == "text/html; charset=utf-8"
    missing_state = get(listener, session_id="cs_1", status="paid")
    assert missing_state.status_code == 400
    two_states = requests.get(f"{listener.return_url}?session_id=cs_1&state=x&state={listener.state}", timeout=5)
    assert two_states.status_code == 400
    assert listener.wait(0.1) is None
    assert not listener.closed

    right = get(listener, session_id="cs_1", state=listener.state, status="paid")
    assert right.status_code == 200
    assert listener.wait(5) == CallbackResult("cs_1", "paid")


def test_missing_session_id_is_refused(listener: LoopbackListener) -> None:
    assert get(listener, state=listener.state, status="paid").status_code == 400
    assert get(listener, session_id="", state=listener.state).status_code == 400
    assert get(listener, session_id="x" * 300, state=listener.state).status_code == 400
    assert listener.wait(0.1) is None


def test_other_paths_and_methods(listener: LoopbackListener) -> None:
    for path in ("/", "/favicon.ico", "/callback/extra", "/CALLBACK"):
        answer = get(listener, path, session_id="cs_1", state=listener.state)
        assert answer.status_code == 404, path
        assert answer.headers["Cache-Control"] == "no-store"
    posted = requests.post(f"{listener.return_url}?session_id=cs_1&state={listener.state}", timeout=5)
    assert posted.status_code == 405
    assert listener.wait(0.1) is None


def test_hostile_session_id_is_escaped(listener: LoopbackListener) -> None:
    hostile = '<script>alert("x")</script>&<img src=x onerror=alert(1)>'
    answer = get(listener, session_id=hostile, state=listener.state, status="<b>paid</b>")
    assert answer.status_code == 200
    assert "<script>" not in answer.text and "<img" not in answer.text and "<b>" not in answer.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&lt;img" in answer.text
    assert "confirming it with the server" in answer.text
    result = listener.wait(5)
    assert result is not None and result.session_id == hostile


@pytest.mark.parametrize("status", ["paid", "cancelled", "pending", "", "failed"])
def test_the_page_never_states_an_outcome_it_cannot_know(listener: LoopbackListener, status: str) -> None:
    """Whoever reaches the listener may have made the status up: the page says the app is confirming."""
    answer = get(listener, session_id="cs_9", state=listener.state, status=status)
    assert answer.status_code == 200
    assert "confirming it with the server" in answer.text
    assert "Payment received" not in answer.text and "cancelled" not in answer.text
    result = listener.wait(5)
    assert result is not None and result.status == (status or "pending")


def test_the_backends_background_hand_off_gets_an_empty_answer(listener: LoopbackListener) -> None:
    """The backend's page sends the result with fetch (Sec-Fetch-Mode: no-cors), staying where it is."""
    preflight = requests.options(listener.return_url, timeout=5, headers={
        "Origin": "https://credits.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Private-Network": "true"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Private-Network"] == "true"
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://credits.example"
    assert listener.wait(0.1) is None  # a preflight is not the callback
    answer = requests.get(listener.return_url, timeout=5, headers={"Sec-Fetch-Mode": "no-cors"},
                          params={"session_id": "cs_9", "state": listener.state, "status": "paid"})
    assert answer.status_code == 204 and answer.content == b""
    assert listener.wait(5) == CallbackResult("cs_9", "paid")


def test_times_out_and_closes() -> None:
    with LoopbackListener(timeout_seconds=0.2) as listener:
        started = time.monotonic()
        assert listener.wait(5) is None
        assert time.monotonic() - started < 3
        assert listener.timed_out and listener.closed
        with pytest.raises(requests.ConnectionError):
            get(listener, session_id="cs_1", state=listener.state)


def test_close_from_another_thread_unblocks_wait_and_is_idempotent() -> None:
    listener = LoopbackListener().start()
    threading.Timer(0.1, listener.close).start()
    started = time.monotonic()
    assert listener.wait(10) is None
    assert time.monotonic() - started < 5
    listener.close()
    listener.close()
    assert not listener.timed_out


def test_close_inside_on_result_does_not_deadlock() -> None:
    done = threading.Event()
    holder: list[LoopbackListener] = []

    def on_result(result: CallbackResult) -> None:
        holder[0].close()
        done.set()

    listener = LoopbackListener(on_result=on_result).start()
    holder.append(listener)
    assert get(listener, session_id="cs_1", state=listener.state, status="paid").status_code == 200
    assert done.wait(5)


def test_a_failing_on_result_does_not_break_the_page() -> None:
    def on_result(result: CallbackResult) -> None:
        raise RuntimeError("boom")

    with LoopbackListener(on_result=on_result) as listener:
        assert get(listener, session_id="cs_1", state=listener.state, status="paid").status_code == 200
        assert listener.wait(5) is not None


def test_nothing_is_written_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    with LoopbackListener() as listener:
        get(listener, "/nope")
        get(listener, session_id="cs_1", state="wrong")
        get(listener, session_id="cs_1", state=listener.state, status="paid")
        listener.wait(5)
    captured = capfd.readouterr()
    assert captured.err == ""
    assert listener.state not in captured.out


def test_start_twice_is_an_error() -> None:
    with LoopbackListener() as listener, pytest.raises(RuntimeError):
        listener.start()
