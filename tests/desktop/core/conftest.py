"""Fixtures for the Qt-free core: API clients on the real stub backend, a test-only in-memory keyring."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import keyring
import keyring.backend
import keyring.errors
import pytest

from desktop.core.api import ApiClient
from tests.helpers.backend import BackendProcess

PASSWORD = "correct horse battery"


def unique_email() -> str:
    return f"desk-{secrets.token_hex(6)}@example.com"


@pytest.fixture
def client(stub_backend: BackendProcess) -> Iterator[ApiClient]:
    """A client signed in as a freshly registered user of the shared stub backend."""
    api = ApiClient(stub_backend.url)
    api.register(unique_email(), PASSWORD)
    yield api
    api.close()


def _memory_keyring_class() -> type[keyring.backend.KeyringBackend]:
    """Defined only when a test asks for it, and never viable for keyring's own detection (its priority
    raises), so that it can never become anyone's default keyring by being imported."""

    class MemoryKeyring(keyring.backend.KeyringBackend):
        @keyring.backend.properties.classproperty
        def priority(cls) -> float:
            raise RuntimeError("a test-only keyring; set it explicitly")

        def __init__(self) -> None:
            super().__init__()
            self.entries: dict[tuple[str, str], str] = {}
            self.fail_with: Exception | None = None

        def get_password(self, service: str, username: str) -> str | None:
            if self.fail_with:
                raise self.fail_with
            return self.entries.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            if self.fail_with:
                raise self.fail_with
            self.entries[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            if self.fail_with:
                raise self.fail_with
            if (service, username) not in self.entries:
                raise keyring.errors.PasswordDeleteError("not found")
            del self.entries[(service, username)]

    return MemoryKeyring


@pytest.fixture
def memory_keyring() -> Iterator[Any]:
    previous = keyring.get_keyring()
    ring = _memory_keyring_class()()
    keyring.set_keyring(ring)
    try:
        yield ring
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Iterator[keyring.backend.KeyringBackend]:
    from keyring.backends import fail

    previous = keyring.get_keyring()
    ring = fail.Keyring()
    keyring.set_keyring(ring)
    try:
        yield ring
    finally:
        keyring.set_keyring(previous)
