"""The build configuration (packaging/build.toml): read at build time, baked into the bundle, read by the app."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from desktop import app
from desktop.core import build_config
from desktop.core.browser import system_environment
from desktop.core.build_config import BuildConfig, BuildConfigError, load_baked, parse_build_toml, read_build_toml
from desktop.core.bundled_backend import BundledBackend, backend_launcher
from desktop.core.settings import resolve_backend_url

ROOT = Path(__file__).resolve().parents[3]

FULL = """
[app]
name = "Acme Credits"
icon = "art/acme.png"

[backend]
url = "https://credits.example.com/"
bundled = false

[updates]
channel = "beta"
url = "https://updates.example.com/creditdesk"
root = "keys/root.json"

[help]
docs_url = "https://docs.example.com/acme"
support_contact = "help@example.com"
"""


def test_the_repository_s_build_toml_is_the_stub_demo_build() -> None:
    config = read_build_toml(ROOT / "packaging" / "build.toml")
    assert config == BuildConfig(app_name="Creditdesk", icon="../resources/icons/creditdesk.svg", backend_url=None,
                                 bundles_backend=True, update_channel="stable", update_url=None)
    assert (ROOT / "packaging" / config.icon).is_file()
    assert config.describe_backend() == "its bundled backend (stub payments)"


def test_every_setting_is_read() -> None:
    config = parse_build_toml(FULL)
    assert config == BuildConfig(app_name="Acme Credits", icon="art/acme.png",
                                 backend_url="https://credits.example.com", bundles_backend=False,
                                 update_channel="beta", update_url="https://updates.example.com/creditdesk",
                                 update_root="keys/root.json", help_docs_url="https://docs.example.com/acme",
                                 help_support_contact="help@example.com")
    assert config.describe_backend() == "https://credits.example.com"


def test_a_missing_section_keeps_its_defaults() -> None:
    config = parse_build_toml('[backend]\nurl = "http://127.0.0.1:8787"\nbundled = false\n')
    assert (config.app_name, config.update_channel, config.bundles_backend) == ("Creditdesk", "stable", False)
    assert parse_build_toml('[backend]\nbundled = false\n').describe_backend() == "no backend (give --backend URL)"


@pytest.mark.parametrize(("text", "says"), [
    ("[backend]\nurll = 'http://x'\n", "unknown key 'urll' in [backend]"),
    ("[updater]\nchannel = 'beta'\n", "unknown section [updater]"),
    ("[backend]\nurl = 'ftp://credits.example.com'\n", "backend.url must start with http:// or https://"),
    ("[backend]\nurl = 'https://user:pw@credits.example.com'\n", "must not contain a user name or password"),
    ("[backend]\nbundled = 'yes'\n", "backend.bundled must be true or false"),
    ("[updates]\nchannel = 'Beta Testers'\n", "updates.channel must be a short lower-case name"),
    ("[updates]\nurl = 'updates.example.com'\nroot = 'r.json'\n", "updates.url must start with http:// or https://"),
    ("[updates]\nurl = 'https://updates.example.com'\n", "updates.url needs updates.root, the update repository's"),
    ("[app]\nicon = 'icon.ico'\n", "app.icon must be an SVG or PNG file"),
    ("[help]\ndocs_url = 'docs.example.com'\n", "help.docs_url must start with http:// or https://"),
    ('[help]\nsupport_contact = "call\\nus"\n', "help.support_contact must be on one line"),
    ("[app]\nname = ''\n", "app.name must be a short name on one line"),
    ("[app]\nname = 3\n", "app.name must be a string"),
    ("[app\nname = 'x'\n", "is not valid TOML"),
])
def test_a_setting_that_cannot_work_is_refused_by_its_name(text: str, says: str) -> None:
    with pytest.raises(BuildConfigError, match=r"build\.toml") as refused:
        parse_build_toml(text, "build.toml")
    assert says in str(refused.value)


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BuildConfigError, match=r"cannot read the build configuration .*nothere.toml"):
        read_build_toml(tmp_path / "nothere.toml")


def test_the_baked_file_round_trips_and_a_source_checkout_has_the_defaults(tmp_path: Path) -> None:
    config = BuildConfig(**{**parse_build_toml(FULL).__dict__, "version": "1.2.3"})
    baked = tmp_path / build_config.BAKED_FILE
    baked.write_text(config.to_json(), encoding="utf-8")
    assert load_baked(baked) == config
    # A key a later build adds is ignored by this version rather than failing the start.
    baked.write_text(config.to_json().replace('"version"', '"signing_key": "k", "version"'), encoding="utf-8")
    assert load_baked(baked) == config
    assert load_baked(tmp_path / "none.json") == BuildConfig()
    assert build_config.current() == BuildConfig()  # from source: nothing baked


def test_the_command_line_and_the_environment_win_over_the_baked_url() -> None:
    baked = "https://credits.example.com"
    assert resolve_backend_url(None, {}, default=baked) == baked
    assert resolve_backend_url(None, {"CREDITDESK_BACKEND_URL": "http://127.0.0.1:9"}, default=baked) == \
        "http://127.0.0.1:9"
    assert resolve_backend_url("http://127.0.0.1:8", {"CREDITDESK_BACKEND_URL": "http://127.0.0.1:9"},
                               default=baked) == "http://127.0.0.1:8"


def test_a_build_without_a_backend_never_starts_one(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CREDITDESK_BACKEND_URL", raising=False)
    monkeypatch.setattr(build_config, "current", lambda: BuildConfig(app_name="Acme Credits", bundles_backend=False))
    assert app.main([]) == 2
    assert "this build of Acme Credits names no backend and bundles none: start it with --backend URL" in \
        capsys.readouterr().err


def test_the_installed_app_reports_its_baked_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_config, "current", lambda: BuildConfig(version="9.8.7"))
    assert app.version() == "9.8.7"


def test_a_frozen_app_runs_its_backend_from_its_own_executable(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert backend_launcher() == [sys.executable, "-m", "backend"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", "/opt/creditdesk/creditdesk")
    assert backend_launcher() == ["/opt/creditdesk/creditdesk", build_config.SERVE_BACKEND_ARG]
    command = BundledBackend(tmp_path).command(4242)
    assert command[:4] == ["/opt/creditdesk/creditdesk", "--serve-backend", "serve", "--host"]
    assert backend_launcher("/usr/bin/python3") == ["/usr/bin/python3", "-m", "backend"]


def test_the_browser_gets_the_system_s_libraries_not_the_bundle_s() -> None:
    bundle = {"LD_LIBRARY_PATH": "/opt/creditdesk/_internal", "LD_LIBRARY_PATH_ORIG": "/home/u/lib", "HOME": "/h"}
    assert system_environment(bundle, frozen=True) == {"LD_LIBRARY_PATH": "/home/u/lib", "HOME": "/h"}
    assert system_environment({"LD_LIBRARY_PATH": "/opt/creditdesk/_internal"}, frozen=True) == {}
    assert system_environment(bundle, frozen=False) == bundle


def test_the_environment_wins_over_the_build_s_help_settings() -> None:
    from desktop.core.settings import HelpSettings

    baked = HelpSettings("https://docs.example.com/acme", "help@example.com")
    assert HelpSettings.from_env({}, default=baked) == baked
    assert HelpSettings.from_env({"CREDITDESK_SUPPORT_CONTACT": "desk@example.org"}, default=baked) == HelpSettings(
        "https://docs.example.com/acme", "desk@example.org")
