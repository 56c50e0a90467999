"""Forgot password: a one-time code sent by mail, then a new password with that code.

- Asking answers the same whether or not the account exists (the route says so to everyone), and does the same
  work before it answers: :func:`request_reset` runs after the answer, on the server's mail queue
  (:class:`backend.services.SendingQueue`), and hashes a code for an unknown address too. A code goes out only to
  an account's own address, and only the newest code of a user works.
- A code is :data:`CODE_DIGITS` digits, kept only as an argon2 hash, good once, for :data:`CODE_TTL`, and for at
  most :data:`MAX_WRONG_ATTEMPTS` wrong tries; each of these misses is the same :class:`InvalidResetCode`.
- The new code is written before its mail is sent, so that any code a person can read already works; when the
  mail cannot be sent (MailUnavailable) that code is deleted again and the earlier code, if any, still works. The
  earlier codes go once the mail is out.
- A new password ends every sign-in of the account and starts one, in one transaction.

Clocks are injected (``now=``) as in :mod:`backend.spending`.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select, update

from backend import accounts
from backend.accounts import User
from backend.db import Database, iso_utc
from backend.errors import InvalidResetCode
from backend.mail import Mailer, message
from backend.schema import password_resets, users

log = logging.getLogger("creditdesk")

CODE_DIGITS = 8
CODE_TTL = timedelta(minutes=15)
MAX_WRONG_ATTEMPTS = 5
SUBJECT = "Your Creditdesk password reset code"


def new_code() -> str:
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


def readable(code: str) -> str:
    """``12345678`` as ``1234 5678``: easier to read out and to type (spaces are ignored when it comes back)."""
    half = len(code) // 2
    return f"{code[:half]} {code[half:]}"


def normalise_code(text: str) -> str:
    """The code as typed, without the spaces and dashes a person or a mail program adds."""
    return "".join(char for char in text if char not in " -\u00a0\t")


def mail_text(code: str) -> str:
    minutes = int(CODE_TTL.total_seconds() // 60)
    return (f"Your code to choose a new Creditdesk password is:\n\n    {readable(code)}\n\n"
            f"Enter it in the Creditdesk app within {minutes} minutes. It works once, and it replaces any code "
            "sent to you before.\n\nIf you did not ask for it, ignore this email: your password stays as it is.\n")


def request_reset(db: Database, mailer: Mailer, email: str, *, now: datetime | None = None) -> None:
    """Send a new code to the account of ``email``, if there is one; nothing is said either way. MailUnavailable
    when its mail cannot be sent (then nothing is changed)."""
    moment = now or datetime.now(UTC)
    with db.read() as conn:
        user = accounts.find_user(conn, email)
    code = new_code()
    # Hashed for an unknown address too: both do the work of one hash.
    code_hash = accounts.hash_password(code)
    if user is None:
        return
    with db.transaction() as conn:
        # Beside the earlier codes, which stop working at once (only the newest row counts, see confirm_reset).
        reset_id = conn.execute(insert(password_resets).values(
            user_id=user.id, code_hash=code_hash, created_at=iso_utc(moment),
            expires_at=iso_utc(moment + CODE_TTL), attempts=0, used_at=None).returning(password_resets.c.id)
        ).scalar_one()
    try:
        mailer.send(message(user.email, SUBJECT, mail_text(code)))
    except BaseException:
        # A code that never went out is not kept: the earlier one is the newest again.
        with db.transaction() as conn:
            conn.execute(password_resets.delete().where(password_resets.c.id == reset_id))
        raise
    with db.transaction() as conn:
        conn.execute(password_resets.delete().where(password_resets.c.user_id == user.id,
                                                    password_resets.c.id < reset_id))
    log.info("password reset: a code was sent to user %d", user.id)


@dataclass(frozen=True)
class Reset:
    user: User
    token: str
    signins_ended: int


def confirm_reset(db: Database, email: str, code: str, password: str, token_ttl_seconds: int, *,
                  now: datetime | None = None) -> Reset:
    """Set ``password`` when ``code`` is the live code of ``email``'s account; end its sign-ins and start one.
    InvalidResetCode otherwise, counting a wrong code against it."""
    moment = iso_utc(now or datetime.now(UTC))
    live = (password_resets.c.used_at.is_(None), password_resets.c.expires_at > moment,
            password_resets.c.attempts < MAX_WRONG_ATTEMPTS)
    # The user's newest code alone, live or not: an earlier one never works again, even while its row is still
    # there (while the newest one's mail is being sent, or when a failed write left it).
    newest = (select(func.max(password_resets.c.id)).where(password_resets.c.user_id == users.c.id)
              .correlate(users).scalar_subquery())
    with db.read() as conn:
        row = conn.execute(
            select(password_resets.c.id, password_resets.c.code_hash, users.c.id.label("user_id"), users.c.email)
            .select_from(password_resets.join(users, users.c.id == password_resets.c.user_id))
            .where(users.c.email == accounts.normalise_email(email), password_resets.c.id == newest, *live)
        ).mappings().first()
    if not accounts.verify_password(row["code_hash"] if row else None, normalise_code(code)) or row is None:
        if row is not None:
            with db.transaction() as conn:
                conn.execute(update(password_resets).where(password_resets.c.id == row["id"], *live)
                             .values(attempts=password_resets.c.attempts + 1))
        raise InvalidResetCode
    user = User(row["user_id"], row["email"])
    password_hash = accounts.hash_password(password)  # slow on purpose: outside the write lock
    with db.transaction() as conn:
        # Claimed here, once: of two confirmations racing with the right code, one sets the password.
        claimed = conn.execute(update(password_resets).where(password_resets.c.id == row["id"], *live)
                               .values(used_at=moment)).rowcount
        if claimed != 1:
            raise InvalidResetCode
        accounts.set_password_hash(conn, user.id, password_hash)
        ended = accounts.revoke_all_tokens(conn, user.id)
        token = accounts.add_token(conn, user, token_ttl_seconds)
    log.info("password reset: user %d chose a new password; %d sign-in(s) ended", user.id, ended)
    return Reset(user, token, ended)
