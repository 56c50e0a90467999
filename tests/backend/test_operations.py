"""What an operator runs the backend with: liveness and readiness, Prometheus metrics on a port of their
own, JSON log lines carrying the request's id, and the settings that turn them on."""

from __future__ import annotations

import gc
import json
import re
import signal
import uuid
from pathlib import Path

import pytest
import requests

from backend import cli
from backend.config import ConfigError, Settings
from tests.conftest import SHARED_ENV
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess


def test_liveness_and_readiness(backend_factory) -> None:
    backend = backend_factory(SHARED_ENV)
    live = requests.get(f"{backend.url}/api/health/live", timeout=10)
    assert live.status_code == 200 and live.json()["status"] == "ok"
    ready = requests.get(f"{backend.url}/api/health/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready" and body["checks"]["database"]["state"] == "available"
    assert body["checks"]["database"]["schema"] == body["checks"]["database"]["needs"]
    assert body["checks"]["paymentProvider"] == {"state": "available"}


@pytest.mark.subprocess
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_service_manager_s_stop_or_ctrl_c_ends_the_server_cleanly(tmp_path: Path, stop: signal.Signals) -> None:
    """systemd's stop (SIGTERM) or Ctrl-C, while the watcher of standard input (``--exit-with-stdin``) still waits
    for its end: the server shuts down, writes its last log lines and exits 0.

    Before: a watcher blocked reading the buffered ``sys.stdin`` held its lock, and the interpreter's exit waited a
    second for it, then aborted (SIGABRT); and uvicorn raising SIGTERM again after its shutdown killed the process
    before the log's last lines were written."""
    backend = BackendProcess(tmp_path, SHARED_ENV).start()
    assert backend.proc is not None
    backend.proc.send_signal(stop)
    assert backend.proc.wait(10) == 0
    backend.stop()
    assert "Fatal Python error" not in backend.log() and "Finished server process" in backend.log()


def test_the_collector_is_on_again_and_start_up_s_heap_frozen_once_the_server_is_built() -> None:
    """serve starts up with the garbage collector off (a sixth of a start's CPU was its rounds over start-up's
    objects); what it made is frozen out of the collector's sight and the collector runs again while serving."""
    gc.disable()
    try:
        cli.settle_heap()
        assert gc.isenabled() and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.enable()


@pytest.mark.subprocess
def test_a_replica_whose_database_is_gone_is_not_ready_but_still_live(tmp_path: Path) -> None:
    backend = BackendProcess(tmp_path, SHARED_ENV).start()
    try:
        backend.db_path.unlink()  # a SQLite file deleted under the server: a read finds no schema
        ready = requests.get(f"{backend.url}/api/health/ready", timeout=10)
        assert ready.status_code == 503 and ready.headers["Retry-After"] == "5"
        assert ready.json()["status"] == "not_ready" and ready.json()["error"]["code"] == "not_ready"
        assert ready.json()["checks"]["database"]["state"] in ("not_migrated", "unavailable")
        assert requests.get(f"{backend.url}/api/health/live", timeout=10).status_code == 200
    finally:
        backend.stop()


def _scrape(backend: BackendProcess) -> str:
    found = re.search(r"metrics at (http://127\.0\.0\.1:\d+)/metrics", backend.log_with("metrics at"))
    assert found, backend.log()
    return requests.get(f"{found[1]}/metrics", timeout=10).text


def _value(metrics: str, name: str, **labels: str) -> float:
    for line in metrics.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_are_off_by_default_and_on_a_port_of_their_own(backend_factory) -> None:
    quiet = backend_factory(SHARED_ENV, name="quiet")
    assert requests.get(f"{quiet.url}/metrics", timeout=10).status_code == 404
    assert "metrics at" not in quiet.log()

    backend = backend_factory({**SHARED_ENV, "CREDITDESK_METRICS_PORT": "0"}, name="metered")
    api = Api(backend.url).register()
    checkout = api.checkout("standard")
    assert requests.post(checkout["url"] + "/pay", allow_redirects=False, timeout=10).status_code in (302, 303)
    assert api.verify(checkout["sessionId"]).json()["status"] == "paid"
    api.get("/api/credits/transactions")
    metrics = _scrape(backend)
    assert _value(metrics, "creditdesk_http_requests_total", method="POST", route="/api/auth/register",
                  status="201") == 1
    assert _value(metrics, "creditdesk_http_requests_total", method="GET", route="/api/billing/verify-payment",
                  status="200") == 1
    assert _value(metrics, "creditdesk_credits_total", movement="granted") == 550
    assert "creditdesk_stripe_breaker_open 0.0" in metrics
    assert checkout["sessionId"] not in metrics and api.user["email"] not in metrics  # templates, not values


def test_json_log_lines_carry_the_request_id(backend_factory) -> None:
    backend = backend_factory({**SHARED_ENV, "CREDITDESK_LOG_FORMAT": "json"})
    request_id = str(uuid.uuid4())
    r = requests.get(f"{backend.url}/api/billing/packs", headers={"X-Request-ID": request_id}, timeout=10)
    assert r.headers["X-Request-ID"] == request_id
    assert requests.get(f"{backend.url}/api/health", timeout=10).headers["X-Request-ID"] != request_id
    log = backend.log_with(request_id)
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    access = [line for line in lines if line.get("requestId") == request_id]
    assert access and "/api/billing/packs" in access[0]["message"]


@pytest.mark.parametrize(("env", "problem"), [
    ({"CREDITDESK_LOG_FORMAT": "xml"}, "CREDITDESK_LOG_FORMAT is text or json"),
    ({"CREDITDESK_METRICS_PORT": "ninety"}, "CREDITDESK_METRICS_PORT is a port number"),
    ({"CREDITDESK_METRICS_PORT": "70000"}, "CREDITDESK_METRICS_PORT is a port number"),
])
def test_operations_settings_refuse_what_they_cannot_use(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        Settings.from_env(env)


def test_operations_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env({"CREDITDESK_LOG_FORMAT": "JSON", "CREDITDESK_METRICS_PORT": "9464",
                                  "CREDITDESK_METRICS_HOST": "::"})
    assert (settings.log_format, settings.metrics_port, settings.metrics_host) == ("json", 9464, "::")
    defaults = Settings.from_env({})
    assert (defaults.log_format, defaults.metrics_port, defaults.metrics_host) == ("text", None, "127.0.0.1")


@pytest.mark.parametrize(("given", "kept"), [
    (None, False),  # none: a new one
    ("3f2a9c4e8b7d4e1fa0c2b5d6e7f80912", True),  # 32 hex digits
    ("3F2A9C4E-8B7D-4E1F-A0C2-B5D6E7F80912", True),  # any form uuid.UUID reads
    ("not-a-uuid", False),  # replaced, with a warning
    ("", False),
])
def test_the_request_id_is_the_callers_uuid_or_a_new_uuid4_on_the_request_the_logs_and_the_answer(
        given: str | None, kept: bool, caplog: pytest.LogCaptureFixture) -> None:
    """In process, as uvicorn calls the app's request-id middleware (asgi_correlation_id's, set up as the app sets it
    up; the test above runs it in a server)."""
    import asyncio

    from asgi_correlation_id import CorrelationIdMiddleware, correlation_id

    seen: dict[str, object] = {}

    async def inner(scope: dict, receive: object, send) -> None:  # type: ignore[no-untyped-def]
        seen["headers"] = [value for name, value in scope["headers"] if name == b"x-request-id"]
        seen["context"] = correlation_id.get()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})

    answered: list[dict] = []

    async def send(message: dict) -> None:
        answered.append(message)

    headers = [(b"host", b"example")] + ([(b"x-request-id", given.encode())] if given is not None else [])
    middleware = CorrelationIdMiddleware(inner, header_name="X-Request-ID")  # type: ignore[arg-type]
    asyncio.run(middleware({"type": "http", "headers": headers}, None, send))  # type: ignore[arg-type]
    request_id = seen["context"]
    assert isinstance(request_id, str)
    if kept:
        assert request_id == given
    else:
        assert re.fullmatch(r"[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}", request_id)  # a UUID4's hex
        assert uuid.UUID(request_id).version == 4
    assert seen["headers"] == [request_id.encode()]  # the request's one header says it too
    assert answered[0]["headers"] == [(b"content-length", b"0"), (b"x-request-id", request_id.encode())]
    warned = [r for r in caplog.records if r.name == "asgi_correlation_id"]
    assert len(warned) == (1 if given and not kept else 0)
