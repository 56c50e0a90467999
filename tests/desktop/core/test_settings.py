"""App folders, the backend URL, the settings file."""

from __future__ import annotations

import base64
from pathlib import Path

import platformdirs
import pytest

from desktop.core.settings import (
    AppPaths,
    InvalidBackendUrl,
    SavedSettings,
    SettingsStore,
    resolve_backend_url,
)


def test_paths_default_to_platformdirs() -> None:
    paths = AppPaths.default({})
    assert paths.data_dir == platformdirs.user_data_path("creditdesk", appauthor=False)
    assert paths.config_dir == platformdirs.user_config_path("creditdesk", appauthor=False)
    assert paths.log_dir == platformdirs.user_log_path("creditdesk", appauthor=False)


def test_creditdesk_home_puts_everything_under_one_folder(tmp_path: Path) -> None:
    paths = AppPaths.default({"CREDITDESK_HOME": str(tmp_path)}).ensure()
    assert paths == AppPaths(tmp_path / "data", tmp_path / "config", tmp_path / "log")
    assert all(p.is_dir() for p in (paths.data_dir, paths.config_dir, paths.log_dir))
    assert paths.settings_file.parent == paths.config_dir
    assert paths.purchase_records_file.parent == paths.data_dir
    assert paths.log_file.parent == paths.log_dir
    assert paths.backend_db == paths.data_dir / "backend.sqlite3"


def test_backend_url_precedence() -> None:
    env = {"CREDITDESK_BACKEND_URL": "http://env.example:8000/"}
    assert resolve_backend_url("https://cli.example", env) == "https://cli.example"
    assert resolve_backend_url(None, env) == "http://env.example:8000"
    assert resolve_backend_url("  ", env) == "http://env.example:8000"
    assert resolve_backend_url(None, {}) is None
    assert resolve_backend_url(None, {"CREDITDESK_BACKEND_URL": " "}) is None
    assert resolve_backend_url("http://127.0.0.1:8787/base/", {}) == "http://127.0.0.1:8787/base"


@pytest.mark.parametrize("bad", [
    "ftp://example.com", "example.com:8000", "http://", "http://:80", "http://host:notaport",
    "http://host:99999", "http://user:pw@host", "http://host/?q=1", "javascript:alert(1)",
])
def test_invalid_backend_urls(bad: str) -> None:
    with pytest.raises(InvalidBackendUrl) as caught:
        resolve_backend_url(bad, {})
    assert "--backend" in str(caught.value)
    with pytest.raises(InvalidBackendUrl) as from_env:
        resolve_backend_url(None, {"CREDITDESK_BACKEND_URL": bad})
    assert "CREDITDESK_BACKEND_URL" in str(from_env.value)


def test_credentials_in_a_backend_url_are_not_echoed() -> None:
    with pytest.raises(InvalidBackendUrl) as caught:
        resolve_backend_url("http://user:hunter2@host", {})
    assert "hunter2" not in str(caught.value)


def test_settings_round_trip(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "config" / "settings.json")
    assert store.load() == SavedSettings()
    geometry = base64.b64encode(b"\x01\xd9\xd0\xcb geometry").decode()
    store.save(SavedSettings(last_email="a@example.com", window_geometry=geometry))
    assert SettingsStore(store.path).load() == SavedSettings("a@example.com", geometry)
    updated = store.update(last_email="b@example.com")
    assert updated == SavedSettings("b@example.com", geometry)
    assert store.load() == updated
    assert [p.name for p in store.path.parent.iterdir()] == ["settings.json"]


def test_settings_keep_unknown_keys_and_ignore_wrong_types(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"last_email": 5, "window_geometry": "AAA=", "future": {"x": 1}}')
    store = SettingsStore(path)
    settings = store.load()
    assert settings.last_email is None and settings.window_geometry == "AAA="
    store.update(last_email="a@example.com")
    assert '"future"' in path.read_text()


def test_corrupt_settings_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("{{{")
    assert SettingsStore(path).load() == SavedSettings()
    assert (tmp_path / "settings.json.corrupt").read_text() == "{{{"
    assert not path.exists()
