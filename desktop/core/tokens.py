"""Sign-in tokens in the system keyring, one entry per backend identity and account.

An entry's user name is ``"<backend identity> <email>"`` (see :mod:`desktop.core.identity`): the bundled backend's
identity survives restarts, so one entry serves every start. The store keeps an index of the entries it wrote
(``keyring-entries.json``, user names only, never tokens), because keyrings cannot be listed portably: that is how
stale entries are found and removed.

Where no keyring works (no Secret Service, a locked or broken keyring) tokens are kept in memory for this
session only: the app still works, the user signs in again next time, and ``where`` says so. A token never
reaches a log line, an exception message or a ``repr``. Finding the system keyring imports every keyring
backend and may talk to D-Bus: it happens on first use, which the app makes on a worker thread.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from desktop.core._files import atomic_write_text

if TYPE_CHECKING:
    import keyring.backend

log = logging.getLogger("creditdesk.tokens")

SERVICE = "creditdesk"

# Backends that are there but keep nothing.
_NOT_PERSISTENT = {"keyring.backends.fail.Keyring", "keyring.backends.null.Keyring"}


def _name_of(backend: object) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def account_key(backend: str, email: str) -> str:
    """The keyring user name: ``"<backend identity> <email>"`` (no trailing slash, email lower-cased)."""
    return f"{backend.rstrip('/')} {email.strip().lower()}"


def split_key(key: str) -> tuple[str, str]:
    """``account_key``'s parts: (backend identity, email)."""
    backend, _, email = key.rpartition(" ")
    return backend, email


class TokenStore:
    """``load``/``save``/``delete`` never raise for keyring trouble; they fall back to memory instead."""

    def __init__(self, service: str = SERVICE, backend: keyring.backend.KeyringBackend | None = None, *,
                 index_path: Path | None = None) -> None:
        self.service = service
        self.index_path = index_path
        self._lock = threading.RLock()
        self._memory: dict[str, str] = {}
        self._problem: str | None = None
        self._backend = backend
        self._resolved = False
        if backend is not None:
            self._set_backend(backend)

    def _set_backend(self, backend: keyring.backend.KeyringBackend | None) -> None:
        self._backend = backend
        self._backend_class = _name_of(backend) if backend is not None else "none"
        if self._backend_class in _NOT_PERSISTENT and self._problem is None:
            self._problem = "no keyring"
        self._resolved = True

    def _ring(self) -> keyring.backend.KeyringBackend | None:
        """The keyring, found on first use."""
        with self._lock:
            if not self._resolved:
                try:
                    import keyring  # imported here: it is slow, and the window is up by now

                    found = keyring.get_keyring()
                except Exception as exc:  # a broken keyring configuration must not stop the app
                    self._problem = f"keyring unavailable: {type(exc).__name__}"
                    found = None
                self._set_backend(found)
            return self._backend

    def prepare(self) -> TokenStore:
        """Find the system keyring now (slow: call it on a worker thread)."""
        self._ring()
        return self

    def __repr__(self) -> str:
        if not self._resolved:
            return "TokenStore(backend=<not looked up yet>)"
        return f"TokenStore(backend={self._backend_class!r}, persistent={self.persistent})"

    @property
    def persistent(self) -> bool:
        """Whether tokens outlive this session (False once the keyring has failed)."""
        self._ring()
        return self._problem is None

    @property
    def backend_name(self) -> str:
        self._ring()
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
        import keyring.errors

        if self._problem is None:
            self._problem = "keyring failed" if not isinstance(exc, keyring.errors.NoKeyringError) else "no keyring"
            log.warning("the keyring (%s) failed to %s (%s); keeping sign-ins for this session only",
                        self._backend_class, action, type(exc).__name__)

    # -- the index of entries written ----------------------------------------------------------------------------

    def known_keys(self) -> list[str]:
        """The user names of the entries this app has written and not deleted (oldest first)."""
        if self.index_path is None:
            return sorted(self._memory)
        try:
            data = json.loads(self.index_path.read_text(encoding="utf-8"))
            keys = data.get("entries", []) if isinstance(data, dict) else []
            return [key for key in keys if isinstance(key, str)]
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("the keyring index %s is unreadable (%s); starting a new one", self.index_path,
                        type(exc).__name__)
            return []

    def _index(self, key: str, present: bool) -> None:
        if self.index_path is None:
            return
        keys = [k for k in self.known_keys() if k != key]
        if present:
            keys.append(key)
        try:
            atomic_write_text(self.index_path, json.dumps({"version": 1, "entries": keys}, indent=2) + "\n")
        except OSError as exc:
            log.warning("cannot write the keyring index %s (%s)", self.index_path, type(exc).__name__)

    # -- tokens -------------------------------------------------------------------------------------------------

    def load(self, backend: str, email: str) -> str | None:
        return self.load_key(account_key(backend, email))

    def load_key(self, key: str) -> str | None:
        ring = self._ring()
        with self._lock:
            if self.persistent and ring is not None:
                try:
                    return ring.get_password(self.service, key) or None
                except Exception as exc:
                    self._degrade("read a token", exc)
            return self._memory.get(key)

    def save(self, backend: str, email: str, token: str) -> None:
        key = account_key(backend, email)
        ring = self._ring()
        with self._lock:
            if self.persistent and ring is not None:
                try:
                    ring.set_password(self.service, key, token)
                    self._memory.pop(key, None)
                    self._index(key, True)
                    return
                except Exception as exc:
                    self._degrade("store a token", exc)
            self._memory[key] = token

    def delete(self, backend: str, email: str) -> None:
        self.delete_key(account_key(backend, email))

    def delete_key(self, key: str) -> None:
        ring = self._ring()
        with self._lock:
            self._memory.pop(key, None)
            self._index(key, False)
            if ring is None or self._backend_class in _NOT_PERSISTENT:
                return
            import keyring.errors

            try:
                ring.delete_password(self.service, key)
            except keyring.errors.PasswordDeleteError:
                pass  # nothing stored: nothing to delete
            except Exception as exc:
                self._degrade("delete a token", exc)
