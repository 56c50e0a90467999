"""The backend's deployment files, tested as far as this machine can: it has no container engine, so the
image is not built here; its entry point, the settings it passes and what the files name are.

The README's "Running the backend on a server" says what was not run here."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from backend.api.app import create_app
from backend.config import Settings
from backend.services import Services

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


@pytest.fixture
def fake_backend_command(tmp_path: Path) -> dict[str, str]:
    """A ``creditdesk-backend`` on PATH that prints the arguments it was given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    command = bin_dir / "creditdesk-backend"
    command.write_text('#!/bin/sh\necho "creditdesk-backend $*"\n')
    command.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def _entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", str(DEPLOY / "entrypoint.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=30)


@pytest.mark.parametrize(("env", "args", "runs"), [
    ({}, (), "creditdesk-backend serve --host 0.0.0.0 --port 8787"),
    ({}, ("serve",), "creditdesk-backend serve --host 0.0.0.0 --port 8787"),
    ({"CREDITDESK_PORT": "9000", "CREDITDESK_HOST": "::"}, ("serve",),
     "creditdesk-backend serve --host :: --port 9000"),
    ({}, ("migrate",), "creditdesk-backend migrate"),
    ({}, ("user", "ann@example.com", "--json"), "creditdesk-backend user ann@example.com --json"),
], ids=str)
@pytest.mark.subprocess
def test_the_images_entry_point_serves_migrates_or_runs_an_admin_command(
    fake_backend_command: dict[str, str], env: dict[str, str], args: tuple[str, ...], runs: str
) -> None:
    r = _entrypoint({**fake_backend_command, **env}, *args)
    assert (r.returncode, r.stdout.strip(), r.stderr) == (0, runs, "")


@pytest.mark.parametrize("port", ["", "http", "80; rm -rf /"])
@pytest.mark.subprocess
def test_the_entry_point_refuses_a_port_that_is_not_a_number(fake_backend_command: dict[str, str], port: str) -> None:
    r = _entrypoint({**fake_backend_command, "CREDITDESK_PORT": port}, "serve")
    if port == "":  # unset or empty: the default port
        assert r.returncode == 0 and r.stdout.strip().endswith("--port 8787")
        return
    assert r.returncode == 2 and r.stdout == "" and "CREDITDESK_PORT must be a port number" in r.stderr


def test_the_image_installs_every_dependency_of_the_backend() -> None:
    """The image installs the backend's dependencies, not the desktop's: the list in the Dockerfile is the
    backend part of pyproject's dependencies (those before the "# desktop" line)."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    backend_part = pyproject.split("dependencies = [", 1)[1].split("# desktop", 1)[0]
    wanted = {re.split(r"[<>=!\[ ]", line.strip().strip('",'))[0].lower()
              for line in backend_part.splitlines() if line.strip().startswith('"')}
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    install = dockerfile.split("-c /tmp/backend-lock.txt \\", 1)[1].split("\n\nFROM", 1)[0]
    listed = {re.split(r"[<>=\[]", word.strip('"'))[0].lower() for word in install.replace("\\", " ").split()}
    assert wanted and wanted <= listed, wanted - listed
    assert "pyside6" not in listed and "USER creditdesk" in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/api/health/live" in dockerfile
    assert tomllib.loads(pyproject)["project"]["scripts"]["creditdesk-backend"] == "backend.cli:main"


def test_the_compose_file_is_the_readmes_production_layout(tmp_path: Path) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "backend-1", "backend-2", "caddy"}
    replicas = [services["backend-1"], services["backend-2"]]
    for replica in replicas:
        assert replica["command"] == ["serve"]
        assert replica["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        env = replica["environment"]
        assert env["CREDITDESK_DATABASE_URL"].startswith("postgresql://")
        assert env["CREDITDESK_REDIS_URL"].startswith("redis://")
    # The replicas believe X-Forwarded-For from Caddy alone, at the address the compose file gives it.
    proxy = services["caddy"]["networks"]["default"]["ipv4_address"]
    trusted = replicas[0]["environment"]["CREDITDESK_TRUSTED_PROXIES"]
    settings = Settings.from_env({"CREDITDESK_TRUSTED_PROXIES": str(trusted)})
    assert [str(n.network_address) for n in settings.trusted_proxies] == [proxy]
    assert services["migrate"]["command"] == ["migrate"]
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    assert "backend-1:8787 backend-2:8787" in caddyfile
    health_uri = re.search(r"health_uri (\S+)", caddyfile)
    assert health_uri
    services = Services.build(Settings(db_path=tmp_path / "db.sqlite3"), "http://127.0.0.1:9")
    try:
        assert health_uri[1] in {getattr(route, "path", None) for route in create_app(services).routes}
    finally:
        services.db.close()


def test_the_systemd_unit_migrates_then_serves_on_loopback_as_its_own_user() -> None:
    unit = (DEPLOY / "creditdesk-backend.service").read_text()
    lines = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert lines["User"] == "creditdesk" and lines["UMask"] == "0077"
    assert lines["ExecStartPre"].endswith("creditdesk-backend migrate")
    assert lines["ExecStart"].endswith("creditdesk-backend serve --host 127.0.0.1 --port 8787")
    assert os.access(DEPLOY / "entrypoint.sh", os.X_OK)
