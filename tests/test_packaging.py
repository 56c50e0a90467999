"""The wheel works outside the source tree: `pip install .` gives working commands with their resources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
# Building the sdist and the wheel and installing it into a new venv takes a minute or two on a busy
# machine; the first test pays for it.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv, outside the source tree, with the project's wheel and its dependencies installed (not
    editable), by uv as the Makefile installs (20 s less than pip, most of it PySide6 unpacked and compiled)."""
    where = tmp_path_factory.mktemp("wheel")
    # The wheel is built from the sdist, as PyPA's build does by default: a stale build/ folder in the
    # working tree (an old migration, a deleted module) cannot leak into it. The build uses this venv's
    # setuptools (--no-isolation): a fresh isolated environment for each of the two builds took longer than both.
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(where / "dist"), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = (where / "dist").glob("creditdesk-*.whl")
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    uv = Path(sys.executable).parent / "uv"
    installer = [str(uv), "pip", "install", "--python", str(venv / "bin" / "python")] if uv.exists() else [
        str(venv / "bin" / "python"), "-m", "ensurepip", "--default-pip"]
    if not uv.exists():  # a venv made before the Makefile installed uv
        subprocess.run(installer, check=True, capture_output=True)
        installer = [str(venv / "bin" / "python"), "-m", "pip", "install"]
    subprocess.run([*installer, "--quiet", "-c", str(ROOT / "requirements" / "lock.txt"), str(wheel)], check=True,
                   capture_output=True)
    return venv


def clean_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "CREDITDESK_", "PYTHON"))}
    env["CREDITDESK_DB"] = str(tmp / "backend.sqlite3")
    return env


@pytest.mark.parametrize("command", [["creditdesk-backend"], ["python", "-m", "backend"]])
@pytest.mark.subprocess
def test_the_installed_backend_serves_the_bundled_packs(installed: Path, tmp_path: Path, command: list[str]) -> None:
    exe = [str(installed / "bin" / command[0]), *command[1:]]
    proc = subprocess.Popen([*exe, "serve", "--port", "0"], cwd=tmp_path, env=clean_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split("listening on ", 1)[1].split()[0]
        deadline = time.monotonic() + 20
        while True:
            try:
                health = requests.get(f"{url}/api/health", timeout=2).json()
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert health["status"] == "ok" and health["payments"] == "stub"
        packs = requests.get(f"{url}/api/billing/packs", timeout=5).json()["packs"]
        assert [p["id"] for p in packs] == ["starter", "standard", "pro"]
        page = requests.get(f"{url}/account/credits/success?session_id=cs_x", timeout=5)
        assert page.status_code == 404 and "Creditdesk" in page.text  # the templates travelled too
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
    where = "import backend, resources; print(backend.__file__, resources.__file__)"
    assert str(ROOT) not in subprocess.run([str(installed / "bin" / "python"), "-c", where], capture_output=True,
                                           text=True, cwd=tmp_path, env=clean_env(tmp_path), check=True).stdout
    guide = "import resources; print(resources.path('help.md').read_text(encoding='utf-8').splitlines()[0])"
    assert subprocess.run([str(installed / "bin" / "python"), "-c", guide], capture_output=True, text=True,
                          cwd=tmp_path, env=clean_env(tmp_path), check=True).stdout.strip() == "# Using Creditdesk"


@pytest.mark.subprocess
def test_the_installed_app_prints_diagnostics_with_its_bundled_backend(installed: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    env.update({"CREDITDESK_HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen"})
    result = subprocess.run([str(installed / "bin" / "creditdesk"), "--diagnostics"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backend"]["bundled"] is True and report["backend"]["reachable"] is True
    assert report["backend"]["payments"] == "stub"
    assert report["app"]["version"] == "0.1.0" and report["app"]["qt"].startswith("6.")
    assert report["paths"]["data"].startswith(str(tmp_path / "home"))
