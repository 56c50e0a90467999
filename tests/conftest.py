"""Fixtures shared by the whole suite: the real backend on loopback, in stub and Stripe mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import pytest

from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.fakes import memory_keyring_class
from tests.helpers.stripe_server import FakeStripe

# Generous per-address limits for the shared servers: every test comes from 127.0.0.1. No automatic
# reconcile in Stripe mode: the tests that reconcile say so, and the others count Stripe's calls.
SHARED_ENV = {"CREDITDESK_AUTH_RATE_LIMIT_PER_ADDRESS": "100000/minute", "CREDITDESK_RECONCILE_INTERVAL": "0"}


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


STRIPE_KEY = "sk_test_creditdesk_0123456789abcdef"
WEBHOOK_SECRET = "whsec_test_creditdesk_0123456789abcdef"


@pytest.fixture
def stripe_backend(backend_factory) -> Iterator[tuple[BackendProcess, FakeStripe]]:
    """A backend in Stripe mode, its own database, talking to a Stripe-compatible server on loopback."""
    with FakeStripe(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET) as fake:
        backend = backend_factory({
            **SHARED_ENV, "STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_BASE": fake.url,
        })
        fake.webhook_url = f"{backend.url}/api/webhooks/stripe"
        yield backend, fake
        fake.wait_deliveries(timeout=15)
        assert backend.ledger_problems() == []
        assert fake.errors == []
        log = backend.log()
        assert STRIPE_KEY not in log and WEBHOOK_SECRET not in log


@pytest.fixture
def memory_keyring() -> Iterator[keyring.backend.KeyringBackend]:
    """A working keyring, in memory, for this test only."""
    previous = keyring.get_keyring()
    ring = memory_keyring_class()()
    keyring.set_keyring(ring)
    try:
        yield ring
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Iterator[keyring.backend.KeyringBackend]:
    """No keyring at all, as on a headless Linux without a Secret Service."""
    from keyring.backends import fail

    previous = keyring.get_keyring()
    ring = fail.Keyring()
    keyring.set_keyring(ring)
    try:
        yield ring
    finally:
        keyring.set_keyring(previous)
