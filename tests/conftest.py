"""Fixtures shared by the whole suite: the real backend on loopback, in stub and Stripe mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess

# Generous per-address limits for the shared servers: every test comes from 127.0.0.1.
SHARED_ENV = {"CREDITDESK_AUTH_RATE_LIMIT_PER_ADDRESS": "100000/minute"}


@pytest.fixture(scope="session")
def stub_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    with BackendProcess(tmp_path_factory.mktemp("stub-backend"), SHARED_ENV) as backend:
        yield backend
    assert backend.ledger_problems() == []


@pytest.fixture
def stub_api(stub_backend: BackendProcess) -> Api:
    """A freshly registered user on the shared stub-mode backend."""
    return Api(stub_backend.url).register()


@pytest.fixture
def backend_factory(tmp_path: Path) -> Iterator[type]:
    """Start backends with their own database and environment; all are stopped after the test."""
    started: list[BackendProcess] = []

    def start(env: dict[str, str] | None = None, name: str = "backend") -> BackendProcess:
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        backend = BackendProcess(folder, env).start()
        started.append(backend)
        return backend

    yield start  # type: ignore[misc]
    for backend in started:
        backend.stop()
