"""Fixtures shared by the whole suite: the real backend on loopback, in stub and Stripe mode, on SQLite
and on PostgreSQL.

The backend's own tests run once per database engine: every test under :data:`BOTH_ENGINES` that uses
a backend (through ``db_engine``) is run on SQLite, the embedded default, and on a real PostgreSQL
server that the tests start themselves. Where PostgreSQL is not installed those runs are skipped with
the command that installs it; under ``CI=true`` they fail.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.backend
import pytest

from backend.config import PASSWORD_HASH_PROFILE
from tests.helpers import dist
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.commands import root_logger_restored
from tests.helpers.fakes import FileKeyring, memory_keyring_class
from tests.helpers.servers import PostgresServer, RedisServer, ServerUnavailable
from tests.helpers.stripe_server import FakeStripe

# Passwords are hashed with argon2's cheapest parameters in this process and in every backend the tests start
# (a hash in microseconds instead of 0.23 s), except where a test is about hashing's cost. Exporting
# CREDITDESK_PASSWORD_HASH_PROFILE= (empty) runs the suite with the production profile.
os.environ.setdefault(PASSWORD_HASH_PROFILE, "test")

# Generous per-address limits for the shared servers: every test comes from 127.0.0.1. No automatic
# reconcile in Stripe mode: the tests that reconcile say so, and the others count Stripe's calls.
SHARED_ENV = {"CREDITDESK_AUTH_RATE_LIMIT_PER_ADDRESS": "100000/minute", "CREDITDESK_RECONCILE_INTERVAL": "0",
              "CREDITDESK_RESET_LIMIT_PER_ADDRESS": "100000/minute"}

ENGINES = ("sqlite", "postgresql")
# The tests that run on both engines (unless their `engines` marker says otherwise): the backend's suite and its
# pages in a real browser.
BOTH_ENGINES = ("tests/backend/", "tests/e2e/test_browser_backend.py")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``db_engine`` over :data:`ENGINES`, or over those a test's ``engines`` marker names (closest first: a
    test's own, then its module's). A test whose answer cannot depend on the engine (the HTTP shape of an
    answer, a rate limit, a page) says ``@pytest.mark.engines("sqlite")`` and runs once."""
    if "db_engine" in metafunc.fixturenames and metafunc.definition.nodeid.startswith(BOTH_ENGINES):
        marker = metafunc.definition.get_closest_marker("engines")
        engines = marker.args if marker else ENGINES
        assert engines and set(engines) <= set(ENGINES), f"{metafunc.definition.nodeid}: engines{engines!r}"
        # Parametrised even for one engine: the session's backends are shared by the tests of an engine
        # (the fixture's cache key is the parameter), and the test's id still says which it ran on.
        metafunc.parametrize("db_engine", engines, indirect=True, scope="session")


# -- markers ---------------------------------------------------------------------------------------------------
# Every test is marked by what it needs, so that `make test-fast` can leave out what is slow to start:
#   postgresql  runs on a real PostgreSQL server        browser     drives headless Chromium
#   subprocess  starts processes (backends, servers)    slow        takes seconds of its own
# The first three are given here from the fixtures and parameters a test uses; a test that starts processes
# in its own body says so with @pytest.mark.subprocess (or a module's pytestmark). The guard below fails a
# test that starts a process without being marked, so the fast subset stays honest.
SPAWNING_FIXTURES = frozenset({"stub_backend", "stub_api", "backend_factory", "stripe_backend", "postgres",
                               "redis_server", "browser", "client"})


def pytest_collection_finish(session: pytest.Session) -> None:
    dist.start_in_background(session)  # the bundle's build overlaps the suite (tests/test_dist.py)


def pytest_sessionfinish(session: pytest.Session) -> None:
    dist.stop_background()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("db_engine") == "postgresql" or "postgres" in names:
            item.add_marker(pytest.mark.postgresql)
        if "browser" in names or item.nodeid.startswith("tests/e2e/"):
            item.add_marker(pytest.mark.browser)
        if names & SPAWNING_FIXTURES:
            item.add_marker(pytest.mark.subprocess)


_MAY_SPAWN = ("subprocess", "postgresql", "browser")

# The stripe SDK's first request names the platform (platform.uname(), whose processor runs `uname -p` once per
# process and is cached): asked here, before any test, so that which test comes first in a worker does not decide
# whether an unmarked in-process test "starts a process".
platform.uname().processor  # noqa: B018


def _from_find_library() -> bool:
    """ctypes.util.find_library runs ldconfig, gcc or ld to find a library (keyring's back ends, on first use)."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_globals.get("__name__") == "ctypes.util":
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


@pytest.fixture(autouse=True)
def _loggers_restored() -> Iterator[None]:
    """What a test sets up for logging goes with it (admin commands run in process set a command line's stderr
    handler; the app's set-up gives ``creditdesk`` INFO): see :func:`tests.helpers.commands.root_logger_restored`.
    A worker runs tests of every package one after the other."""
    with root_logger_restored():
        yield


@pytest.fixture(autouse=True)
def _processes_only_where_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail a test that starts a process without a marker saying it may (see the markers above)."""
    if any(request.node.get_closest_marker(name) for name in _MAY_SPAWN):
        return
    real_init = subprocess.Popen.__init__

    def refuse(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        if _from_find_library():
            real_init(self, *args, **kwargs)
            return
        command = args[0] if args else kwargs.get("args")
        pytest.fail(f"{request.node.nodeid} starts a process ({command!r}): "
                    "mark it @pytest.mark.subprocess, or make the process a fixture", pytrace=False)

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


def _server_or_skip(start: Callable[[], object]) -> object:
    """Start a server the tests need; skip where it is not installed, but fail under CI=true."""
    try:
        return start()
    except ServerUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc}: CI must have it (.ci/run installs it)", pytrace=False)
        pytest.skip(f"{exc}; install it to run these tests")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole run."""
    server = _server_or_skip(lambda: PostgresServer().start())
    assert isinstance(server, PostgresServer)
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the whole run (tests may stop and start it)."""
    server = _server_or_skip(lambda: RedisServer().start())
    assert isinstance(server, RedisServer)
    yield server
    server.close()


@pytest.fixture(scope="session")
def db_engine(request: pytest.FixtureRequest) -> str:
    """The database engine the backend runs on: ``sqlite`` unless the test is one of :data:`BOTH_ENGINES`."""
    return getattr(request, "param", "sqlite")


class Databases:
    """New databases for backends on the engine of the test: ``None`` (the backend's own SQLite file) or the
    URL of a fresh PostgreSQL database at the newest schema, dropped when the fixture ends."""

    def __init__(self, engine: str, request: pytest.FixtureRequest) -> None:
        self.engine = engine
        self._request = request
        self._made: list[tuple[PostgresServer, str]] = []

    def new(self, *, migrated: bool = True, copy_of: str | None = None) -> str | None:
        if self.engine == "sqlite":
            return None
        server: PostgresServer = self._request.getfixturevalue("postgres")
        url = server.create_database(migrated=migrated, copy_of=copy_of)
        self._made.append((server, url))
        return url

    def drop_all(self) -> None:
        for server, url in self._made:
            server.drop_database(url)


@pytest.fixture
def databases(db_engine: str, request: pytest.FixtureRequest) -> Iterator[Databases]:
    made = Databases(db_engine, request)
    yield made
    made.drop_all()


@pytest.fixture(scope="session")
def stub_backend(
    tmp_path_factory: pytest.TempPathFactory, db_engine: str, request: pytest.FixtureRequest
) -> Iterator[BackendProcess]:
    made = Databases(db_engine, request)
    with BackendProcess(tmp_path_factory.mktemp("stub-backend"), SHARED_ENV, database_url=made.new()) as backend:
        yield backend
    assert backend.ledger_problems() == []
    made.drop_all()


@pytest.fixture
def stub_api(stub_backend: BackendProcess) -> Api:
    """A freshly registered user on the shared stub-mode backend."""
    return Api(stub_backend.url).register()


@pytest.fixture
def backend_factory(tmp_path: Path, databases: Databases) -> Iterator[type]:
    """Start backends with their own database (on the test's engine) and environment; all are stopped
    after the test. ``database_url`` puts several on one database, as replicas."""
    started: list[BackendProcess] = []

    def start(env: dict[str, str] | None = None, name: str = "backend", *,
              database_url: str | None = None) -> BackendProcess:
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        backend = BackendProcess(folder, env, database_url=database_url or databases.new()).start()
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


@pytest.fixture
def file_keyring(tmp_path: Path) -> Iterator[FileKeyring]:
    """A working keyring in a file, shared with the app processes the test starts (``ring.env()``)."""
    previous = keyring.get_keyring()
    ring = FileKeyring(tmp_path / "keyring.json")
    keyring.set_keyring(ring)
    try:
        yield ring
    finally:
        keyring.set_keyring(previous)

