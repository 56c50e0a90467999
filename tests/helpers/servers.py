"""Real PostgreSQL and Redis servers for the tests, started from the distribution's binaries.

Each server runs as a child of the test run in a temporary folder, on a free loopback port, and dies
with the test run however it ends (the kernel sends it a signal when its parent goes: PR_SET_PDEATHSIG).
PostgreSQL refuses to run as root, so as root (CI runs as root) it runs as ``nobody``.

PostgreSQL gives each test a database of its own: ``CREATE DATABASE ... TEMPLATE`` copies a database
that the migrations brought to the newest schema once per run, which takes a fraction of a second.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

INSTALL_POSTGRES = "apt-get install postgresql"
INSTALL_REDIS = "apt-get install redis-server"
_PR_SET_PDEATHSIG = 1


class ServerUnavailable(RuntimeError):
    """The server's binaries are not installed on this machine."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _child_setup(user: pwd.struct_passwd | None, death_signal: int | None) -> Callable[[], None]:
    """What runs in the child between fork and exec: drop to ``user``, then ask for ``death_signal``
    when the test run goes (after the change of user, which would clear it)."""

    def setup() -> None:
        if user is not None:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
        if death_signal is not None:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, death_signal)
        os.setpgrp()  # Ctrl+C in the terminal goes to pytest, which stops the server in order

    return setup


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the server did not listen on port {port} within {timeout}s")


# --- PostgreSQL -------------------------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """The folder of ``postgres`` and ``initdb``: Debian keeps them per version under /usr/lib/postgresql."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.parent.name)) or (0,)

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=version, reverse=True)
    if found:
        return found[0].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


class PostgresServer:
    """A throw-away PostgreSQL cluster on 127.0.0.1 with a superuser ``postgres`` and no password; fsync is
    off unless ``durable`` (benchmarks compare durable commits)."""

    TEMPLATE = "creditdesk_template"

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable
        bindir = postgres_bindir()
        if bindir is None:
            raise ServerUnavailable(f"PostgreSQL is not installed ({INSTALL_POSTGRES})")
        self.bindir = bindir
        self.folder = Path(tempfile.mkdtemp(prefix="creditdesk-postgres-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        # PostgreSQL will not run as root: as root, run it as nobody.
        self._user = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
        if self._user is not None:
            os.chown(self.folder, self._user.pw_uid, self._user.pw_gid)

    def start(self) -> PostgresServer:
        """Start the server (made on the first start; a later start, after ``stop``, keeps data and port)."""
        if not self.data.exists():
            subprocess.run(
                [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                 "--locale=C.UTF-8", "--no-sync"],
                check=True, capture_output=True, preexec_fn=_child_setup(self._user, None), cwd=self.folder,
            )
        restart = self.port != 0
        for _attempt in range(1 if restart else 5):
            self.port = self.port if restart else free_port()
            settings: dict[str, object] = {
                "listen_addresses": "127.0.0.1", "port": self.port, "unix_socket_directories": self.folder,
                "max_connections": 400, "shared_buffers": "128MB", "log_min_messages": "warning"}
            if not self.durable:
                # Durability is not what the tests are about: no fsync makes each test's database quick to copy.
                settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
            args = [f"-c{name}={value}" for name, value in settings.items()]
            with self.log.open("ab") as log:
                self.proc = subprocess.Popen(
                    [str(self.bindir / "postgres"), "-D", str(self.data), *args], stdout=log, stderr=log,
                    stdin=subprocess.DEVNULL, cwd=self.folder, preexec_fn=_child_setup(self._user, signal.SIGQUIT),
                )
            try:
                _wait_for_port(self.port, self.proc, self.log)
                break
            except RuntimeError:
                if "already in use" not in self.log.read_text(errors="replace"):
                    raise
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                with self.admin():
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                               autocommit=True, connect_timeout=10)

    def create_database(self, *, migrated: bool = True, copy_of: str | None = None) -> str:
        """A new database; at the newest schema (a copy of the template) unless ``migrated`` is False, or a copy of
        the database at ``copy_of`` (a URL of this server's, which nothing may be connected to)."""
        name = f"creditdesk_{os.getpid()}_{next(self._names)}"
        with self.admin() as conn:
            if copy_of is not None:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{copy_of.rsplit("/", 1)[1]}"')
            elif migrated:
                self._ensure_template(conn)
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.TEMPLATE}"')
            else:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _ensure_template(self, conn: psycopg.Connection) -> None:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.TEMPLATE,)).fetchone():
            return
        from backend import migrations
        from backend.db import Database

        conn.execute(f'CREATE DATABASE "{self.TEMPLATE}"')
        db = Database(self.url(self.TEMPLATE), pool_size=1)
        try:
            migrations.upgrade(db)
        finally:
            db.close()

    def stop(self) -> None:
        """Stop the server, as an outage would; ``start`` brings it back with its data."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # "fast" shutdown: clients are disconnected
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- Redis ------------------------------------------------------------------------------------------


class RedisServer:
    """A redis-server on 127.0.0.1 that keeps nothing on disk; ``stop()`` and ``start()`` again on the same
    port stand for an outage."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists()
                                                   else None)
        if binary is None:
            raise ServerUnavailable(f"Redis is not installed ({INSTALL_REDIS})")
        self.binary = binary
        self.folder = Path(tempfile.mkdtemp(prefix="creditdesk-redis-"))
        self.log = self.folder / "redis.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
                 "--dir", str(self.folder)],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.folder,
                preexec_fn=_child_setup(None, signal.SIGKILL),
            )
        _wait_for_port(self.port, self.proc, self.log)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            assert sock.recv(64).startswith(b"+OK")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
