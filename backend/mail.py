"""Sending mail: through the app maker's SMTP server, or, where none is configured (development, the bundled
backend), into an outbox folder of ``.eml`` files that any mail program opens.

Configured by the environment (:class:`backend.config.Settings`): ``CREDITDESK_SMTP_HOST`` (with ``_PORT``,
``_USER``, ``_PASSWORD``, ``_STARTTLS``), ``CREDITDESK_MAIL_FROM`` and ``CREDITDESK_MAIL_OUTBOX``. A message that
cannot be sent raises :class:`backend.errors.MailUnavailable`; the SMTP password never reaches a log line or an
error's text.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Protocol

from backend.config import Settings
from backend.errors import MailUnavailable

log = logging.getLogger("creditdesk")

SMTP_TIMEOUT_SECONDS = 15.0
# How long a client is asked to wait after a failed send: the mail server may be back by then.
RETRY_AFTER_SECONDS = 30


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` (its From is filled in when missing); MailUnavailable when it cannot be."""


def message(to: str, subject: str, body: str) -> EmailMessage:
    """A plain-text message to ``to``, dated now, with a message id of its own."""
    mail = EmailMessage()
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    mail["Message-ID"] = make_msgid(domain="creditdesk.invalid")
    mail.set_content(body)
    return mail


@dataclass(frozen=True)
class SmtpMailer:
    host: str
    port: int
    sender: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = True
    timeout: float = SMTP_TIMEOUT_SECONDS

    def send(self, message: EmailMessage) -> None:
        if "From" not in message:
            message["From"] = self.sender
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    # Refused by smtplib when the server does not offer it: never sent in the clear by surprise.
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            # The type and the server's reply code only: an exception's text may quote what was sent.
            code = getattr(exc, "smtp_code", None)
            log.warning("mail: could not send through %s:%d (%s%s)", self.host, self.port, type(exc).__name__,
                        f" {code}" if code else "")
            raise MailUnavailable(f"SMTP {type(exc).__name__}", RETRY_AFTER_SECONDS) from None


@dataclass(frozen=True)
class OutboxMailer:
    """Each message as ``<UTC time>-<random>.eml`` in ``folder``, readable by its owner only (it may hold a code)."""

    folder: Path
    sender: str

    def send(self, message: EmailMessage) -> None:
        if "From" not in message:
            message["From"] = self.sender
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}.eml"
        partial = self.folder / f".{name}.partial"
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(message.as_bytes())
            # Whole or not at all: a reader of the folder never sees half a message.
            partial.rename(self.folder / name)
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink()
            log.warning("mail: could not write to the outbox %s (%s)", self.folder, exc.strerror or type(exc).__name__)
            raise MailUnavailable(f"outbox {type(exc).__name__}", RETRY_AFTER_SECONDS) from None


def mailer(settings: Settings) -> Mailer:
    """SMTP when ``CREDITDESK_SMTP_HOST`` is set, else the outbox folder."""
    if settings.smtp_host:
        return SmtpMailer(settings.smtp_host, settings.smtp_port, settings.mail_from, settings.smtp_user,
                          settings.smtp_password, settings.smtp_starttls)
    return OutboxMailer(settings.outbox_folder, settings.mail_from)


def describe(settings: Settings) -> str:
    """Where mail goes, for the start-up log (never the password)."""
    if settings.smtp_host:
        tls = "STARTTLS" if settings.smtp_starttls else "no TLS"
        return f"SMTP {settings.smtp_host}:{settings.smtp_port} ({tls}, from {settings.mail_from})"
    return f"the outbox folder {settings.outbox_folder} (no CREDITDESK_SMTP_HOST)"
