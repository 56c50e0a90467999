"""Accounts and bearer tokens. Passwords are argon2 hashes; tokens are stored only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from backend.db import Database, utcnow
from backend.errors import EmailTaken, InvalidCredentials

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
        if conn.execute("SELECT 1 FROM users WHERE email = ?", (email,)).fetchone():
            raise EmailTaken(email)
        cursor = conn.execute(
            "INSERT INTO users (email, password_hash, created_at) VALUES (?, ?, ?)",
            (email, password_hash, utcnow()),
        )
        assert cursor.lastrowid is not None
        return User(cursor.lastrowid, email)


def authenticate(db: Database, email: str, password: str) -> User:
    row = db.connection().execute(
        "SELECT id, email, password_hash FROM users WHERE email = ?", (normalise_email(email),)
    ).fetchone()
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
        conn.execute("DELETE FROM tokens WHERE user_id = ? AND expires_at < ?", (user.id, now))
        conn.execute(
            "INSERT INTO tokens (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
            (_digest(token), user.id, utcnow(), now + ttl_seconds),
        )
    return token


def user_for_token(db: Database, token: str) -> User | None:
    row = db.connection().execute(
        "SELECT u.id, u.email FROM tokens t JOIN users u ON u.id = t.user_id"
        " WHERE t.token_hash = ? AND t.expires_at > ?",
        (_digest(token), time.time()),
    ).fetchone()
    return User(row["id"], row["email"]) if row else None


def revoke_token(db: Database, token: str) -> None:
    with db.transaction() as conn:
        conn.execute("DELETE FROM tokens WHERE token_hash = ?", (_digest(token),))


def find_user(conn: sqlite3.Connection, email: str) -> User | None:
    row = conn.execute("SELECT id, email FROM users WHERE email = ?", (normalise_email(email),)).fetchone()
    return User(row["id"], row["email"]) if row else None
