"""Sign-in tokens in the system keyring, one entry per backend and account.

Where no keyring works (no Secret Service, a locked or broken keyring) tokens are kept in memory for this
session only: the app still works, the user signs in again next time, and ``where`` says so. A token never
reaches a log line, an exception message or a ``repr``.
"""

from __future__ import annotations

import logging
import threading

import keyring
import keyring.backend
import keyring.errors

log = logging.getLogger("creditdesk.tokens")

SERVICE = "creditdesk"

# Backends that are there but keep nothing.
_NOT_PERSISTENT = {"keyring.backends.fail.Keyring", "keyring.backends.null.Keyring"}


def _name_of(backend: object) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def account_key(backend_url: str, email: str) -> str:
    """The keyring user name: ``"<backend url> <email>"`` (URL without a trailing slash, email lower-cased)."""
    return f"{backend_url.rstrip('/')} {email.strip().lower()}"


class TokenStore:
    """``load``/``save``/``delete`` never raise for keyring trouble; they fall back to memory instead."""

    def __init__(self, service: str = SERVICE, backend: keyring.backend.KeyringBackend | None = None) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._memory: dict[str, str] = {}
        self._problem: str | None = None
        if backend is None:
            try:
                backend = keyring.get_keyring()
            except Exception as exc:  # a broken keyring configuration must not stop the app
                self._problem = f"keyring unavailable: {type(exc).__name__}"
                backend = None
        self._backend = backend
        self._backend_class = _name_of(backend) if backend is not None else "none"
        if self._backend_class in _NOT_PERSISTENT and self._problem is None:
            self._problem = "no keyring"

    def __repr__(self) -> str:
        return f"TokenStore(backend={self._backend_class!r}, persistent={self.persistent})"

    @property
    def persistent(self) -> bool:
        """Whether tokens outlive this session (False once the keyring has failed)."""
        return self._problem is None

    @property
    def backend_name(self) -> str:
        if self.persistent:
            return self._backend_class
        return f"{self._backend_class} ({self._problem}: tokens kept for this session only)"

    @property
    def where(self) -> str:
        """A sentence for the UI."""
        if self.persistent:
            label = getattr(self._backend, "name", None) or self._backend_class
            return f"Your sign-in is kept in the system keyring ({label}), so you stay signed in next time."
        return ("No system keyring is available, so your sign-in is kept only until Creditdesk closes; "
                "you will be asked to sign in again next time.")

    def _degrade(self, action: str, exc: BaseException) -> None:
        if self._problem is None:
            self._problem = "keyring failed" if not isinstance(exc, keyring.errors.NoKeyringError) else "no keyring"
            log.warning("the keyring (%s) failed to %s (%s); keeping sign-ins for this session only",
                        self._backend_class, action, type(exc).__name__)

    def load(self, backend_url: str, email: str) -> str | None:
        key = account_key(backend_url, email)
        with self._lock:
            if self.persistent and self._backend is not None:
                try:
                    return self._backend.get_password(self.service, key) or None
                except Exception as exc:
                    self._degrade("read a token", exc)
            return self._memory.get(key)

    def save(self, backend_url: str, email: str, token: str) -> None:
        key = account_key(backend_url, email)
        with self._lock:
            if self.persistent and self._backend is not None:
                try:
                    self._backend.set_password(self.service, key, token)
                    self._memory.pop(key, None)
                    return
                except Exception as exc:
                    self._degrade("store a token", exc)
            self._memory[key] = token

    def delete(self, backend_url: str, email: str) -> None:
        key = account_key(backend_url, email)
        with self._lock:
            self._memory.pop(key, None)
            if self._backend is None or self._backend_class in _NOT_PERSISTENT:
                return
            try:
                self._backend.delete_password(self.service, key)
            except keyring.errors.PasswordDeleteError:
                pass  # nothing stored: nothing to delete
            except Exception as exc:
                self._degrade("delete a token", exc)
