"""Password resets below HTTP (backend/password_resets.py): a code by mail, good once, for 15 minutes and five wrong
tries, the newest only; a new password ends every sign-in. On both engines: each test writes the codes and the
tokens and reads them back, and the expiry is a comparison in SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from backend import accounts, password_resets
from backend.accounts import User
from backend.db import Database
from backend.errors import InvalidCredentials, InvalidResetCode, MailUnavailable
from backend.mail import OutboxMailer
from backend.schema import password_resets as resets_table
from tests.helpers.outbox import code_in, messages

TTL = 3600
PASSWORD = "correct horse battery"
NEW_PASSWORD = "a new password, longer"
START = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)


@pytest.fixture
def outbox(tmp_path: Path) -> OutboxMailer:
    return OutboxMailer(tmp_path / "outbox", "Creditdesk <no-reply@example.com>")


@pytest.fixture
def user(db: Database) -> User:
    return accounts.register(db, "Ada@Example.com", PASSWORD)


def ask(db: Database, outbox: OutboxMailer, email: str = "ada@example.com", now: datetime = START) -> str:
    """Ask for a code for ``email`` and return the one the mail gives."""
    before = len(messages(outbox.folder))
    password_resets.request_reset(db, outbox, email, now=now)
    sent = messages(outbox.folder)
    assert len(sent) == before + 1
    return code_in(sent[-1])


def rows(db: Database) -> list[dict[str, object]]:
    with db.read() as conn:
        return [dict(row) for row in conn.execute(select(resets_table)).mappings()]


def test_a_code_by_mail_sets_a_new_password_once_and_ends_every_sign_in(
    db: Database, outbox: OutboxMailer, user: User
) -> None:
    old_tokens = [accounts.issue_token(db, user, TTL) for _ in range(2)]
    code = ask(db, outbox, "ADA@example.com")
    (mail,) = messages(outbox.folder)
    assert mail["To"] == "ada@example.com" and mail["From"] == "Creditdesk <no-reply@example.com>"
    assert mail["Subject"] == "Your Creditdesk password reset code" and len(code) == password_resets.CODE_DIGITS
    (row,) = rows(db)
    assert code not in str(row["code_hash"]) and str(row["code_hash"]).startswith("$argon2id$")
    assert row["expires_at"] == "2026-12-05T20:15:00.000Z" and row["attempts"] == 0

    reset = password_resets.confirm_reset(db, "ada@example.com", f"{code[:4]} {code[4:]}", NEW_PASSWORD, TTL,
                                          now=START + timedelta(minutes=1))
    assert reset.user == user and reset.signins_ended == 2
    assert all(accounts.user_for_token(db, token) is None for token in old_tokens)
    assert accounts.user_for_token(db, reset.token) == user
    assert accounts.authenticate(db, "ada@example.com", NEW_PASSWORD) == user
    with pytest.raises(InvalidCredentials):
        accounts.authenticate(db, "ada@example.com", PASSWORD)
    # Once only.
    with pytest.raises(InvalidResetCode):
        password_resets.confirm_reset(db, "ada@example.com", code, "yet another password", TTL,
                                      now=START + timedelta(minutes=2))
    assert accounts.user_for_token(db, reset.token) == user


def test_an_unknown_address_gets_no_mail_and_leaves_nothing(db: Database, outbox: OutboxMailer, user: User) -> None:
    password_resets.request_reset(db, outbox, "nobody@example.com", now=START)
    assert messages(outbox.folder) == [] and rows(db) == []
    with pytest.raises(InvalidResetCode):
        password_resets.confirm_reset(db, "nobody@example.com", "12345678", NEW_PASSWORD, TTL, now=START)


@pytest.mark.parametrize(("after", "works"), [
    (timedelta(minutes=14, seconds=59), True),
    (timedelta(minutes=15), False),  # 15 minutes to the millisecond: expired
    (timedelta(hours=2), False),
])
def test_a_code_expires_after_15_minutes(db: Database, outbox: OutboxMailer, user: User, after: timedelta,
                                         works: bool) -> None:
    code = ask(db, outbox)
    if works:
        assert password_resets.confirm_reset(db, user.email, code, NEW_PASSWORD, TTL, now=START + after).user == user
    else:
        with pytest.raises(InvalidResetCode):
            password_resets.confirm_reset(db, user.email, code, NEW_PASSWORD, TTL, now=START + after)
        assert accounts.authenticate(db, user.email, PASSWORD) == user


def test_wrong_codes_are_counted_and_the_fifth_kills_the_code(db: Database, outbox: OutboxMailer, user: User) -> None:
    code = ask(db, outbox)
    wrong = f"{(int(code) + 1) % 10 ** 8:08d}"
    for attempt in range(1, password_resets.MAX_WRONG_ATTEMPTS + 1):
        with pytest.raises(InvalidResetCode):
            password_resets.confirm_reset(db, user.email, wrong, NEW_PASSWORD, TTL, now=START)
        assert rows(db)[0]["attempts"] == attempt
    with pytest.raises(InvalidResetCode):  # the right code, too late
        password_resets.confirm_reset(db, user.email, code, NEW_PASSWORD, TTL, now=START)
    assert rows(db)[0]["attempts"] == password_resets.MAX_WRONG_ATTEMPTS
    assert accounts.authenticate(db, user.email, PASSWORD) == user
    # A new code starts afresh.
    fresh = ask(db, outbox)
    assert password_resets.confirm_reset(db, user.email, fresh, NEW_PASSWORD, TTL, now=START).user == user


def test_only_the_newest_code_works(db: Database, outbox: OutboxMailer, user: User) -> None:
    first = ask(db, outbox)
    second = ask(db, outbox, now=START + timedelta(minutes=1))
    assert len(rows(db)) == 1
    if first != second:
        with pytest.raises(InvalidResetCode):
            password_resets.confirm_reset(db, user.email, first, NEW_PASSWORD, TTL, now=START)
    assert password_resets.confirm_reset(db, user.email, second, NEW_PASSWORD, TTL, now=START).user == user


def test_a_code_of_one_account_does_not_open_another(db: Database, outbox: OutboxMailer, user: User) -> None:
    accounts.register(db, "bob@example.com", PASSWORD)
    code = ask(db, outbox)
    with pytest.raises(InvalidResetCode):
        password_resets.confirm_reset(db, "bob@example.com", code, NEW_PASSWORD, TTL, now=START)
    assert accounts.authenticate(db, "bob@example.com", PASSWORD).email == "bob@example.com"


class FailingMailer:
    def __init__(self) -> None:
        self.tried: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> None:
        self.tried.append(message)
        raise MailUnavailable("the test's mail server is down", 30)


def test_mail_that_cannot_be_sent_changes_nothing(db: Database, outbox: OutboxMailer, user: User) -> None:
    code = ask(db, outbox)
    before = rows(db)
    failing = FailingMailer()
    with pytest.raises(MailUnavailable) as raised:
        password_resets.request_reset(db, failing, user.email, now=START + timedelta(minutes=1))
    assert raised.value.retry_after == 30 and len(failing.tried) == 1
    assert rows(db) == before  # the earlier code is still the live one, and works
    assert password_resets.confirm_reset(db, user.email, code, NEW_PASSWORD, TTL, now=START).user == user


def test_an_outbox_that_cannot_be_written_is_mail_unavailable(db: Database, tmp_path: Path, user: User) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(MailUnavailable):
        password_resets.request_reset(db, OutboxMailer(tmp_path / "a-file" / "outbox", "x@example.com"), user.email)
    assert rows(db) == []


def test_outbox_messages_are_whole_files_readable_by_their_owner_only(
    db: Database, outbox: OutboxMailer, user: User
) -> None:
    ask(db, outbox)
    (path,) = outbox.folder.iterdir()
    assert path.suffix == ".eml" and path.stat().st_mode & 0o777 == 0o600
    assert outbox.folder.stat().st_mode & 0o777 == 0o700


class TryingTheEarlierCode:
    """A mail server that, while the new code's mail is with it, sees whether the earlier code still works."""

    def __init__(self, db: Database, code: str) -> None:
        self.db, self.code, self.earlier_worked = db, code, True

    def send(self, message: EmailMessage) -> None:
        try:
            password_resets.confirm_reset(self.db, "ada@example.com", self.code, NEW_PASSWORD, TTL, now=START)
        except InvalidResetCode:
            self.earlier_worked = False


def test_the_new_code_works_before_its_mail_goes_and_the_earlier_no_longer(
    db: Database, outbox: OutboxMailer, user: User
) -> None:
    earlier = ask(db, outbox)
    mailer = TryingTheEarlierCode(db, earlier)
    password_resets.request_reset(db, mailer, user.email, now=START + timedelta(minutes=1))
    assert not mailer.earlier_worked and len(rows(db)) == 1
    assert accounts.authenticate(db, user.email, PASSWORD) == user


def test_an_unknown_address_costs_the_same_hashing_as_a_known_one(
    db: Database, outbox: OutboxMailer, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asking for a code hashes one for every address (then, for an account, writes and mails it): what the work
    costs says nothing about whether the account exists. Counted, not timed: the real hash runs each time."""
    hashed: list[str] = []
    real_hash = accounts.hash_password
    monkeypatch.setattr(accounts, "hash_password", lambda text: hashed.append(text) or real_hash(text))
    password_resets.request_reset(db, outbox, user.email, now=START)
    password_resets.request_reset(db, outbox, "nobody@example.com", now=START)
    assert len(hashed) == 2 and all(len(code) == password_resets.CODE_DIGITS for code in hashed)
    assert len(messages(outbox.folder)) == 1
