"""The backend on PostgreSQL: migrating by hand, refusing an unmigrated database, the schema the code expects."""

from __future__ import annotations

import os

import pytest

from backend import migrations
from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.commands import CommandResult, run_command
from tests.helpers.servers import PostgresServer


def cli(*args: str, database_url: str) -> CommandResult:
    """``creditdesk-backend ARGS`` on ``database_url`` and nothing else of this machine's settings."""
    return run_command(list(args), {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                    "CREDITDESK_DATABASE_URL": database_url})


def test_migrate_brings_an_empty_database_to_the_newest_schema_once(postgres: PostgresServer) -> None:
    url = postgres.create_database(migrated=False)
    r = cli("migrate", database_url=url)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"migrated the database from schema version none to {migrations.head()}"
    again = cli("migrate", database_url=url)
    assert again.stdout.strip() == f"the database is up to date (schema version {migrations.head()})"
    r = cli("check", database_url=url)
    assert r.returncode == 0 and "the ledger adds up" in r.stdout, r.stdout + r.stderr
    postgres.drop_database(url)


def test_serve_refuses_an_unmigrated_database_in_one_line_and_creates_nothing(
    postgres: PostgresServer, tmp_path
) -> None:
    url = postgres.create_database(migrated=False)
    backend = BackendProcess(tmp_path, database_url=url)
    assert backend.refused_to_start() == 1
    lines = backend.log().strip().splitlines()
    assert lines[-1] == (f"creditdesk-backend: the database is at schema version none and this backend needs "
                         f"{migrations.head()}: run `creditdesk-backend migrate` once, then start the replicas")
    assert "Traceback" not in backend.log()
    assert backend.query("SELECT COUNT(*) AS n FROM pg_tables WHERE schemaname = 'public'")[0]["n"] == 0

    assert cli("migrate", database_url=url).returncode == 0  # once migrated, it serves
    backend.start()
    assert Api(backend.url).register().balance() == 0
    backend.stop()
    postgres.drop_database(url)


@pytest.mark.subprocess
def test_serve_on_a_database_server_that_does_not_answer_says_so_in_one_line(tmp_path) -> None:
    from tests.helpers.servers import free_port

    url = f"postgresql://creditdesk@127.0.0.1:{free_port()}/creditdesk"
    backend = BackendProcess(tmp_path, database_url=url)
    assert backend.refused_to_start() == 1
    last = backend.log().strip().splitlines()[-1]
    assert last.startswith("creditdesk-backend: ") and "database" in last and "Traceback" not in backend.log()
