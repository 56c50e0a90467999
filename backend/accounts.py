"""Accounts and bearer tokens. Passwords are argon2 hashes; tokens are stored only as SHA-256 digests."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Connection, bindparam, delete, insert, select, update

from backend import config, prepared
from backend.db import Database, insert_ignoring_duplicates, utcnow
from backend.errors import EmailTaken, InvalidCredentials
from backend.schema import balances, tokens, users


@functools.cache
def _hasher() -> PasswordHasher:
    """argon2-cffi's own profile; its cheapest under CREDITDESK_PASSWORD_HASH_PROFILE=test (test runs only).
    Chosen at the first hash, not at import."""
    if config.password_hash_profile() == "test":
        return PasswordHasher.from_parameters(profiles.CHEAPEST)
    return PasswordHasher()


# Each argon2 hash takes 64 MiB for a moment (memory_cost): a burst of sign-ups must queue here, not
# hash all at once (50 at once took 2.6 GB). Two at a time keep the cores busy and the memory bounded.
HASHES_AT_ONCE = 2
_hash_slots = threading.BoundedSemaphore(HASHES_AT_ONCE)


def hash_password(password: str) -> str:
    with _hash_slots:
        return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; with no hash (no such account, no such code) a dummy one is
    verified all the same, so that a miss costs as long as a wrong guess, and the answer is False."""
    return _verify_password(password_hash or _dummy_hash(), password) and password_hash is not None


def _verify_password(password_hash: str, password: str) -> bool:
    with _hash_slots:
        try:
            return _hasher().verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so that a wrong email costs as long as a wrong password.
    Made at the first use, not at import: importing the backend hashes nothing."""
    return hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class User:
    id: int
    email: str

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "email": self.email}


def normalise_email(email: str) -> str:
    """One spelling per address, the same at sign-up and at sign-in: Unicode NFKC (a combining accent and
    the accented letter are one), the domain in its Unicode form (``xn--`` and Unicode domains are one),
    all in lower case."""
    text = unicodedata.normalize("NFKC", email.strip())
    # Not an address (a sign-in may send anything): kept as it is, and no account can match it.
    with contextlib.suppress(EmailNotValidError):
        text = validate_email(text, check_deliverability=False).normalized
    return text.lower()


def register(db: Database, email: str, password: str,
             on_created: Callable[[Connection, int], None] | None = None) -> User:
    """A new account (EmailTaken if the address has one); ``on_created(conn, user_id)`` runs in the same transaction
    (the catalogue's sign-up bonus: given exactly when the account is made)."""
    email = normalise_email(email)
    password_hash = hash_password(password)  # slow on purpose: outside the write lock
    with db.transaction() as conn:
        # The unique index on email decides between two sign-ups racing for one address, on any replica:
        # the second waits for the first and then inserts nothing.
        added = insert_ignoring_duplicates(
            conn, users, {"email": email, "password_hash": password_hash, "created_at": utcnow()}
        )
        if added is None:
            raise EmailTaken(email)
        # The balance row exists from the start: the ledger locks it before every change.
        conn.execute(insert(balances).values(user_id=added["id"], balance=0))
        if on_created is not None:
            on_created(conn, added["id"])
        return User(added["id"], email)


def authenticate(db: Database, email: str, password: str) -> User:
    with db.read() as conn:
        row = conn.execute(
            select(users.c.id, users.c.email, users.c.password_hash).where(users.c.email == normalise_email(email))
        ).mappings().first()
    if not _verify_password(row["password_hash"] if row else _dummy_hash(), password) or row is None:
        raise InvalidCredentials
    return User(row["id"], row["email"])


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(db: Database, user: User, ttl_seconds: int) -> str:
    with db.transaction() as conn:
        return add_token(conn, user, ttl_seconds)


def add_token(conn: Connection, user: User, ttl_seconds: int) -> str:
    """A new sign-in for ``user``, in the caller's transaction (its expired ones go)."""
    token = secrets.token_urlsafe(32)
    now = time.time()
    conn.execute(delete(tokens).where(tokens.c.user_id == user.id, tokens.c.expires_at < now))
    conn.execute(insert(tokens).values(
        token_hash=_digest(token), user_id=user.id, created_at=utcnow(), expires_at=now + ttl_seconds,
    ))
    return token


def revoke_all_tokens(conn: Connection, user_id: int) -> int:
    """End every sign-in of the user (a new password); how many there were."""
    return conn.execute(delete(tokens).where(tokens.c.user_id == user_id)).rowcount or 0


def set_password_hash(conn: Connection, user_id: int, password_hash: str) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))


# Every signed-in request asks it: built once (building a statement costs more than running it).
_BY_TOKEN = prepared.hot("a user by token", select(users.c.id, users.c.email)
                         .select_from(tokens.join(users, users.c.id == tokens.c.user_id))
                         .where(tokens.c.token_hash == bindparam("token_hash"), tokens.c.expires_at > bindparam("now")))


def user_for_token(db: Database, token: str) -> User | None:
    with db.read() as conn:
        row = prepared.run(conn, _BY_TOKEN, {"token_hash": _digest(token), "now": time.time()}).first()
    return User(row["id"], row["email"]) if row else None


def revoke_token(db: Database, token: str) -> None:
    with db.transaction() as conn:
        conn.execute(delete(tokens).where(tokens.c.token_hash == _digest(token)))


def find_user(conn: Connection, email: str) -> User | None:
    row = conn.execute(
        select(users.c.id, users.c.email).where(users.c.email == normalise_email(email))
    ).mappings().first()
    return User(row["id"], row["email"]) if row else None
