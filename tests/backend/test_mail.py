"""The mail settings (CREDITDESK_SMTP_*, CREDITDESK_MAIL_*) and which way mail goes; sending itself is tested
through the password reset (tests/backend/test_password_reset_api.py, test_password_resets.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend import mail
from backend.config import ConfigError, Settings


def test_without_an_smtp_host_mail_goes_to_the_outbox_beside_the_database(tmp_path: Path) -> None:
    settings = Settings.from_env({"CREDITDESK_DB": str(tmp_path / "data" / "backend.sqlite3")})
    mailer = mail.mailer(settings)
    assert isinstance(mailer, mail.OutboxMailer) and mailer.folder == tmp_path / "data" / "outbox"
    chosen = Settings.from_env({"CREDITDESK_MAIL_OUTBOX": str(tmp_path / "mail")})
    assert mail.mailer(chosen) == mail.OutboxMailer(tmp_path / "mail", "Creditdesk <no-reply@localhost>")
    assert mail.describe(chosen) == f"the outbox folder {tmp_path / 'mail'} (no CREDITDESK_SMTP_HOST)"


def test_smtp_settings_with_starttls_on_by_default_and_the_password_never_shown() -> None:
    settings = Settings.from_env({"CREDITDESK_SMTP_HOST": "smtp.example.com", "CREDITDESK_SMTP_USER": "apikey",
                                  "CREDITDESK_SMTP_PASSWORD": "s3cret-pw", "CREDITDESK_MAIL_FROM": "help@example.com"})
    mailer = mail.mailer(settings)
    assert mailer == mail.SmtpMailer("smtp.example.com", 587, "help@example.com", "apikey", "s3cret-pw", True)
    assert "s3cret-pw" not in repr(settings) and "s3cret-pw" not in repr(mailer)
    assert mail.describe(settings) == "SMTP smtp.example.com:587 (STARTTLS, from help@example.com)"
    off = Settings.from_env({"CREDITDESK_SMTP_HOST": "localhost", "CREDITDESK_SMTP_PORT": "25",
                             "CREDITDESK_SMTP_STARTTLS": "0"})
    assert mail.describe(off) == "SMTP localhost:25 (no TLS, from Creditdesk <no-reply@localhost>)"


@pytest.mark.parametrize(("name", "value", "says"), [
    ("CREDITDESK_SMTP_PORT", "smtp", "CREDITDESK_SMTP_PORT is a port number"),
    ("CREDITDESK_SMTP_PORT", "70000", "CREDITDESK_SMTP_PORT is a port number"),
    ("CREDITDESK_SMTP_STARTTLS", "maybe", "CREDITDESK_SMTP_STARTTLS is 1 (on, the default) or 0 (off)"),
    ("CREDITDESK_MAIL_FROM", "Creditdesk", "CREDITDESK_MAIL_FROM is an address"),
    ("CREDITDESK_RESET_LIMIT_PER_EMAIL", "often", "CREDITDESK_RESET_LIMIT_PER_EMAIL is one or more limits"),
    ("CREDITDESK_RESET_LIMIT_PER_ADDRESS", "3 a day", "CREDITDESK_RESET_LIMIT_PER_ADDRESS is one or more limits"),
])
def test_a_mistyped_mail_setting_stops_the_start_with_what_to_change(name: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env({name: value})
