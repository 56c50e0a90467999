"""Fixtures for the Qt-free core: API clients on the real stub backend, a test-only in-memory keyring."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

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
