"""The real backend as a child process on a loopback port, with its own database and log.

The database is a SQLite file of its own (``CREDITDESK_DB``, as the bundled backend runs) or, given
``database_url``, a PostgreSQL database (``CREDITDESK_DATABASE_URL``, as replicas run); ``query`` and
``ledger_problems`` read either through SQLAlchemy, so a test reads the same on both engines.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import RowMapping, create_engine, text
from sqlalchemy.pool import NullPool

from backend import expiry, grants, ledger
from backend.config import PASSWORD_HASH_PROFILE
from backend.db import Database, sqlite_url
from tests.helpers.commands import CommandResult, run_command
from tests.helpers.sqlite_template import migrated_copy


class BackendProcess:
    def __init__(
        self, tmp: Path, env: dict[str, str] | None = None, *, port: int = 0, database_url: str | None = None,
        new_file: bool = False,
    ) -> None:
        """``new_file``: on SQLite, let the backend make its database (and migrate it) as a first start does,
        instead of starting on a copy of one at the newest schema (:mod:`tests.helpers.sqlite_template`)."""
        self.tmp = tmp
        self.new_file = new_file
        self.db_path = tmp / "backend.sqlite3"
        self._database_url = database_url
        self.engine = "sqlite" if database_url is None else database_url.split(":", 1)[0].split("+")[0]
        self.log_path = tmp / "backend.log"
        self.extra_env = dict(env or {})
        self.port = port
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None

    @property
    def database_url(self) -> str:
        """The PostgreSQL database given, or the SQLite file at ``db_path`` (which a test may move)."""
        return self._database_url or sqlite_url(self.db_path)

    def environment(self) -> dict[str, str]:
        """The backend's environment: this machine's, less any Creditdesk or Stripe settings, plus ours."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "CREDITDESK_"))}
        env.update({"CREDITDESK_DB": str(self.db_path), "PYTHONUNBUFFERED": "1"})
        # argon2's cheapest parameters, as tests/conftest.py sets for the test run (a test may say otherwise).
        env[PASSWORD_HASH_PROFILE] = os.environ.get(PASSWORD_HASH_PROFILE, "test")
        if self.engine != "sqlite":
            env["CREDITDESK_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        return env

    def admin(self, *args: str) -> CommandResult:
        """``creditdesk-backend ARGS`` with this backend's settings and database, as support would run it: in the
        test process (``backend.cli.main``, see tests/helpers/commands.py), beside the server's process."""
        return run_command(list(args), self.environment())

    def start(self) -> BackendProcess:
        if self.engine == "sqlite" and not self.new_file and not self.db_path.exists():
            migrated_copy(self.db_path)
        env = self.environment()
        self._log = self.log_path.open("a")
        # --exit-with-stdin: if the test run itself is killed, the backend goes with it.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "backend", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--exit-with-stdin"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.wait(10)
            raise RuntimeError(f"backend did not start: {line!r}\n{self.log()}")
        self.url = line.split("listening on ", 1)[1].split()[0]
        self.port = int(self.url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/api/health", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"backend never answered /api/health\n{self.log()}")

    def refused_to_start(self) -> int:
        """Start, expecting the backend to refuse (a bad setting, a database it cannot use); its exit code."""
        try:
            self.start()
        except RuntimeError:
            assert self.proc is not None and self.proc.returncode is not None
            return self.proc.returncode
        raise AssertionError(f"the backend started at {self.url}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream:
                    stream.close()
        if hasattr(self, "_log"):
            self._log.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.stop()

    def restart(self) -> BackendProcess:
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def log_with(self, *texts: str, timeout: float = 10.0) -> str:
        """The log once it holds every one of ``texts``, or as it is after ``timeout``: the server's lines are
        written by its logging thread, a moment after the answer they go with."""
        deadline = time.monotonic() + timeout
        while not all(text in (log := self.log()) for text in texts) and time.monotonic() < deadline:
            time.sleep(0.02)
        return log

    def query(self, sql: str, *params: object) -> list[RowMapping]:
        """Run one statement on the backend's database (committed) and return its rows, by column name.

        ``?`` stands for each of ``params`` in turn, on either engine.
        """
        return query(self.database_url, sql, *params)

    def ledger_problems(self) -> list[str]:
        db = Database(self.database_url, pool_size=1)
        try:
            now = datetime.now(UTC)
            expiry.sweep(db.transaction, now, limit=None)
            with db.read() as conn:
                return ledger.check_invariants(conn) + grants.problems(conn, now)
        finally:
            db.close()

    def __enter__(self) -> BackendProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def query(database_url: str, sql: str, *params: object) -> list[RowMapping]:
    """``sql`` with ``?`` placeholders, run once on ``database_url`` in a transaction of its own."""
    names = iter(range(len(params) + 1))
    statement = text(re.sub(r"\?", lambda _: f":p{next(names)}", sql))
    values: dict[str, Any] = {f"p{n}": value for n, value in enumerate(params)}
    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    try:
        with engine.begin() as conn:
            result = conn.execute(statement, values)
            return list(result.mappings()) if result.returns_rows else []
    finally:
        engine.dispose()


class InProcessServer:
    """Serve an app built in the test process on a loopback port (for tests that reach inside it)."""

    def __init__(self, app: object) -> None:
        import socket

        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> InProcessServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()
