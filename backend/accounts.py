"""Accounts and bearer tokens. Passwords are argon2 hashes; tokens are stored only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, insert, select

from backend.db import Database, utcnow
from backend.errors import EmailTaken, InvalidCredentials
from backend.schema import balances, tokens, users

_hasher = PasswordHasher()
# Verified against when the email is unknown, so that a wrong email costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class User:
    id: int
    email: str

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "email": self.email}


def normalise_email(email: str) -> str:
    return email.strip().lower()


def register(db: Database, email: str, password: str) -> User:
    email = normalise_email(email)
    password_hash = _hasher.hash(password)  # slow on purpose: outside the write lock
    with db.transaction() as conn:
        if conn.execute(select(users.c.id).where(users.c.email == email)).first():
            raise EmailTaken(email)
        user_id = conn.execute(
            insert(users).values(email=email, password_hash=password_hash, created_at=utcnow()).returning(users.c.id)
        ).scalar_one()
        # The balance row exists from the start: the ledger locks it before every change.
        conn.execute(insert(balances).values(user_id=user_id, balance=0))
        return User(user_id, email)


def authenticate(db: Database, email: str, password: str) -> User:
    with db.read() as conn:
        row = conn.execute(
            select(users.c.id, users.c.email, users.c.password_hash).where(users.c.email == normalise_email(email))
        ).mappings().first()
    try:
        _hasher.verify(row["password_hash"] if row else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError) as exc:
        raise InvalidCredentials from exc
    if row is None:
        raise InvalidCredentials
    return User(row["id"], row["email"])


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(db: Database, user: User, ttl_seconds: int) -> str:
    token = secrets.token_urlsafe(32)
    now = time.time()
    with db.transaction() as conn:
        conn.execute(delete(tokens).where(tokens.c.user_id == user.id, tokens.c.expires_at < now))
        conn.execute(insert(tokens).values(
            token_hash=_digest(token), user_id=user.id, created_at=utcnow(), expires_at=now + ttl_seconds,
        ))
    return token


def user_for_token(db: Database, token: str) -> User | None:
    with db.read() as conn:
        row = conn.execute(
            select(users.c.id, users.c.email).select_from(tokens.join(users, users.c.id == tokens.c.user_id))
            .where(tokens.c.token_hash == _digest(token), tokens.c.expires_at > time.time())
        ).mappings().first()
    return User(row["id"], row["email"]) if row else None


def revoke_token(db: Database, token: str) -> None:
    with db.transaction() as conn:
        conn.execute(delete(tokens).where(tokens.c.token_hash == _digest(token)))


def find_user(conn: Connection, email: str) -> User | None:
    row = conn.execute(
        select(users.c.id, users.c.email).where(users.c.email == normalise_email(email))
    ).mappings().first()
    return User(row["id"], row["email"]) if row else None
