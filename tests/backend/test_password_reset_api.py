"""``POST /api/auth/password-reset`` and ``/password-reset/confirm`` on the real backend: the mail in its outbox
folder (no SMTP host) or through an SMTP server on loopback (tests/helpers/smtp.py).

On both engines: the whole reset (the code written, tried, claimed; the tokens ended). Once, on SQLite: the shape
of the answers (the same for every address), the limits (counted in memory) and the SMTP path (what is sent does
not depend on the engine), the latter on a backend served in the test's process, whose mail queue the test can wait
for: the mail goes out after the answer."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from backend.api.app import create_app
from backend.config import Settings
from backend.schema import password_resets
from backend.services import Services
from tests.conftest import SHARED_ENV
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess, InProcessServer
from tests.helpers.outbox import code_in, latest_code, messages
from tests.helpers.smtp import SmtpServer

pytestmark = pytest.mark.engines("sqlite")

NEW_PASSWORD = "a new password, longer"


def outbox(backend: BackendProcess) -> Path:
    return backend.db_path.parent / "outbox"


def ask(backend: BackendProcess, email: str) -> requests.Response:
    return Api(backend.url).post("/api/auth/password-reset", json={"email": email})


def confirm(backend: BackendProcess, email: str, code: str, password: str = NEW_PASSWORD) -> requests.Response:
    return Api(backend.url).post("/api/auth/password-reset/confirm",
                                 json={"email": email, "code": code, "password": password})


@pytest.mark.engines("sqlite", "postgresql")
def test_the_whole_reset_through_the_outbox(stub_backend: BackendProcess) -> None:
    api = Api(stub_backend.url).register()
    email = api.user["email"]
    other_sign_in = Api(stub_backend.url)
    r = other_sign_in.post("/api/auth/login", json={"email": email, "password": "correct horse battery"})
    other_sign_in.token = r.json()["token"]

    r = ask(stub_backend, email.upper())
    assert r.status_code == 202, r.text
    code = latest_code(outbox(stub_backend), email)

    r = confirm(stub_backend, email, f"{(int(code) + 1) % 10 ** 8:08d}")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_code"
    (row,) = stub_backend.query("SELECT attempts, used_at FROM password_resets WHERE user_id = ?", api.user["id"])
    assert (row["attempts"], row["used_at"]) == (1, None)

    r = confirm(stub_backend, email, f"{code[:4]}-{code[4:]}")
    assert r.status_code == 200, r.text
    assert r.json()["user"] == api.user and r.json()["token"] not in (api.token, other_sign_in.token)
    for old in (api, other_sign_in):  # every earlier sign-in has ended
        assert old.get("/api/credits/balance").status_code == 401
    assert Api(stub_backend.url, r.json()["token"]).balance() == 0
    login = Api(stub_backend.url).post("/api/auth/login", json={"email": email, "password": NEW_PASSWORD})
    assert login.status_code == 200
    old_password = Api(stub_backend.url).post("/api/auth/login",
                                              json={"email": email, "password": "correct horse battery"})
    assert old_password.status_code == 401

    again = confirm(stub_backend, email, code, "and once more, please")
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_code"


def test_the_answer_is_the_same_whether_or_not_the_account_exists(stub_backend: BackendProcess) -> None:
    api = Api(stub_backend.url).register()
    answers = [ask(stub_backend, email) for email in (api.user["email"], f"nobody-{secrets.token_hex(4)}@example.com",
                                                       "not even an address")]
    for r in answers:
        assert r.status_code == 202
        assert {k: v for k, v in r.headers.items() if k.lower() not in ("date", "x-request-id")} == {
            k: v for k, v in answers[0].headers.items() if k.lower() not in ("date", "x-request-id")}
    assert [r.json() for r in answers] == [answers[0].json()] * 3
    latest_code(outbox(stub_backend), api.user["email"])  # mailed after the answer
    assert answers[0].json() == {
        "status": "sent_if_registered",
        "message": "If an account exists for this email, a code to choose a new password is on its way. It works "
                   "once, for 15 minutes.",
        "expiresInSeconds": 900,
    }
    assert len(messages(outbox(stub_backend), api.user["email"])) == 1
    # A code for an address without an account is as invalid as a wrong one.
    for email in ("nobody@example.com", api.user["email"]):
        r = confirm(stub_backend, email, "00000000")
        assert r.status_code == 400 and r.json()["error"] == {
            "code": "invalid_code",
            "message": "This code is wrong, expired or already used. Ask for a new code if the last one no "
                       "longer works."}


def test_a_new_password_follows_register_s_rules(stub_backend: BackendProcess) -> None:
    api = Api(stub_backend.url).register()
    ask(stub_backend, api.user["email"])
    code = latest_code(outbox(stub_backend), api.user["email"])
    for body in ({"email": api.user["email"], "code": code, "password": "short"},
                 {"email": api.user["email"], "code": code},
                 {"email": api.user["email"], "code": "", "password": NEW_PASSWORD}):
        r = Api(stub_backend.url).post("/api/auth/password-reset/confirm", json=body)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_fields"
    # None of these counted as a try.
    assert stub_backend.query("SELECT attempts FROM password_resets WHERE user_id = ?",
                              api.user["id"])[0]["attempts"] == 0
    assert confirm(stub_backend, api.user["email"], code).status_code == 200


@pytest.mark.subprocess
def test_asking_is_limited_per_email_and_per_address_alike_for_every_address(tmp_path: Path) -> None:
    env = {**SHARED_ENV, "CREDITDESK_RESET_LIMIT_PER_EMAIL": "2/minute",
           "CREDITDESK_RESET_LIMIT_PER_ADDRESS": "7/minute"}
    with BackendProcess(tmp_path, env) as backend:
        known = Api(backend.url).register().user["email"]
        for email in (known, "nobody@example.com"):
            assert [ask(backend, email).status_code for _ in range(2)] == [202, 202]
            r = ask(backend, email)
            assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
            assert 1 <= int(r.headers["Retry-After"]) <= 60
        latest_code(outbox(backend), known, after=1)  # mailed after the answers
        assert len(messages(outbox(backend), known)) == 2
        # Per address: 7 a minute from here, whatever the addresses asked for (the two refused above counted too).
        assert ask(backend, "third@example.com").status_code == 202
        assert ask(backend, "fourth@example.com").status_code == 429


@pytest.mark.subprocess
def test_guessing_codes_is_limited_per_account_and_address(tmp_path: Path) -> None:
    with BackendProcess(tmp_path, SHARED_ENV) as backend:
        email = Api(backend.url).register().user["email"]
        statuses = [confirm(backend, email, f"{n:08d}").status_code for n in range(6)]
        assert statuses == [400] * 5 + [429]


@contextlib.contextmanager
def served_with_smtp(tmp_path: Path, smtp: SmtpServer, **env: str) -> Iterator[tuple[Services, str]]:
    """A backend in this process mailing through ``smtp`` (no STARTTLS unless ``env`` says otherwise)."""
    settings = Settings.from_env({"CREDITDESK_DB": str(tmp_path / "backend.sqlite3"),
                                  "CREDITDESK_SMTP_HOST": "127.0.0.1", "CREDITDESK_SMTP_PORT": str(smtp.port),
                                  "CREDITDESK_SMTP_STARTTLS": "0", **env})
    services = Services.build(settings, "http://127.0.0.1:9")
    try:
        with InProcessServer(create_app(services)) as server:
            yield services, server.url
    finally:
        services.db.close()


def same_answer(a: requests.Response, b: requests.Response) -> bool:
    def shown(r: requests.Response) -> tuple[int, dict[str, str], bytes]:
        headers = {k: v for k, v in r.headers.items() if k.lower() not in ("date", "x-request-id")}
        return r.status_code, headers, r.content
    return shown(a) == shown(b)


def test_the_answer_does_not_wait_for_the_mail_and_is_the_same_for_an_unknown_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with SmtpServer(credentials=("mailer", "smtp-secret-password")) as smtp, served_with_smtp(
            tmp_path, smtp, CREDITDESK_SMTP_USER="mailer", CREDITDESK_SMTP_PASSWORD="smtp-secret-password",
            CREDITDESK_MAIL_FROM="Creditdesk <help@example.com>") as (services, url):
        email = Api(url).register().user["email"]
        smtp.hold()
        known = Api(url).post("/api/auth/password-reset", json={"email": email})
        # Answered while its mail waits at the mail server for as long as the test likes.
        assert smtp.wait_until_holding() and smtp.received == []
        unknown = Api(url).post("/api/auth/password-reset", json={"email": "nobody@example.com"})
        assert known.status_code == 202 and same_answer(known, unknown)
        smtp.release()
        services.sending.drain()
        (sent,) = smtp.received
        assert sent.recipients == [email] and sent.sender == "help@example.com"
        assert sent.login == ("mailer", "smtp-secret-password")
        assert sent.message["From"] == "Creditdesk <help@example.com>" and sent.message["To"] == email
        r = Api(url).post("/api/auth/password-reset/confirm",
                          json={"email": email, "code": code_in(sent.message), "password": NEW_PASSWORD})
        assert r.status_code == 200, r.text
        assert not (tmp_path / "outbox").exists()
    assert "smtp-secret-password" not in caplog.text


@pytest.mark.parametrize("failure", ["refused", "no STARTTLS"])
def test_a_failing_mail_server_changes_no_answer_and_the_log_names_no_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, failure: str
) -> None:
    """STARTTLS is on by default: a server that does not offer it gets nothing, in the clear or otherwise."""
    caplog.set_level(logging.INFO)
    env = {"CREDITDESK_SMTP_STARTTLS": "1"} if failure == "no STARTTLS" else {}
    with SmtpServer() as smtp, served_with_smtp(tmp_path, smtp, **env) as (services, url):
        email = Api(url).register("Mail.Fails@Example.com").user["email"]
        if failure == "refused":
            smtp.refuse(451)  # a passing failure at the mail server
        answers = [Api(url).post("/api/auth/password-reset", json={"email": address})
                   for address in (email, "nobody@example.com")]
        services.sending.drain()
        assert answers[0].status_code == 202 and same_answer(*answers)
        assert smtp.received == []
        with services.db.read() as conn:  # the code that did not go out was not kept
            assert conn.execute(select(password_resets)).all() == []
    assert "mail: could not send a password reset code (MailUnavailable)" in caplog.text
    assert "mail.fails" not in caplog.text.lower() and "nobody@" not in caplog.text
