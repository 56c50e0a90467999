"""Configuration and the pack catalogue: defaults, and clear messages for what cannot work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import resources
from backend.catalogue import Catalogue
from backend.config import ConfigError, Settings
from tests.helpers.commands import run_command


def test_defaults_are_stub_mode_with_the_bundled_packs() -> None:
    settings = Settings.from_env({})
    assert settings.payments_mode == "stub"
    assert settings.packs_path == resources.path("packs.toml")
    assert settings.db_path.name == "backend.sqlite3"


def test_environment_overrides(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "CREDITDESK_DB": str(tmp_path / "x.db"), "CREDITDESK_PUBLIC_URL": "https://credits.example.com/",
        "STRIPE_SECRET_KEY": "sk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_abc",
        "STRIPE_API_BASE": "http://127.0.0.1:12111/",
    })
    assert settings.payments_mode == "stripe" and settings.db_path == tmp_path / "x.db"
    assert settings.public_url == "https://credits.example.com" and settings.stripe_api_base == "http://127.0.0.1:12111"
    assert "sk_test_abc" not in repr(settings) and "whsec_abc" not in repr(settings)


def test_stripe_mode_needs_the_webhook_secret_and_a_secret_key() -> None:
    with pytest.raises(ConfigError, match="STRIPE_WEBHOOK_SECRET"):
        Settings.from_env({"STRIPE_SECRET_KEY": "sk_test_abc"})
    with pytest.raises(ConfigError, match="publishable key"):
        Settings.from_env({"STRIPE_SECRET_KEY": "pk_test_abc", "STRIPE_WEBHOOK_SECRET": "whsec_abc"})


def test_the_bundled_catalogue() -> None:
    catalogue = Catalogue.load(resources.path("packs.toml"))
    assert [(p.id, p.credits, p.amount, p.currency) for p in catalogue.packs] == [
        ("starter", 100, 500, "usd"), ("standard", 550, 2500, "usd"), ("pro", 1200, 5000, "usd")]


@pytest.mark.parametrize(("text", "message"), [
    ("[[packs]\n", "not valid TOML"),
    ("", "no \\[\\[packs\\]\\]"),
    ('[[packs]]\nid = "a"\nname = "A"\ncredits = 10\namount = 100\n', "needs id, name"),
    ('[[packs]]\nid = "a"\nname = "A"\ncredits = -1\namount = 100\ncurrency = "usd"\n', "credits must be"),
    ('[[packs]]\nid = "a"\nname = "A"\ncredits = 1\namount = 1.5\ncurrency = "usd"\n', "amount must be"),
    ('[[packs]]\nid = "A B"\nname = "A"\ncredits = 1\namount = 100\ncurrency = "usd"\n', "id must be"),
    ('[[packs]]\nid = "a"\nname = "A"\ncredits = 1\namount = 100\ncurrency = "dollars"\n', "currency"),
    ('[[packs]]\nid = "a"\nname = "A"\ncredits = 1\namount = 100\ncurrency = "usd"\n' * 2, "used twice"),
    # within what a balance and Stripe take, in a real currency, and the error names the pack
    ('[[packs]]\nid = "gold"\nname = "G"\ncredits = 10000000000000000000\namount = 100\ncurrency = "usd"\n',
     "pack 'gold' \\(number 1\\): credits must be at most 1,000,000,000"),
    ('[[packs]]\nid = "gold"\nname = "G"\ncredits = 5\namount = 100000000\ncurrency = "usd"\n',
     "pack 'gold' \\(number 1\\): amount must be at most 99,999,999"),
    ('[[packs]]\nid = "gold"\nname = "G"\ncredits = 5\namount = 100\ncurrency = "xyz"\n',
     "pack 'gold' \\(number 1\\): currency 'xyz' is not an ISO 4217 currency"),
    ('[[packs]]\nid = "ok"\nname = "A"\ncredits = 1\namount = 1\ncurrency = "eur"\n[[packs]]\nid = 7\n',
     "pack number 2: needs id"),
    ('packs = "starter"\n', "must be a list"),
    # prices Stripe would refuse: fractional krónur, and a three-decimal price not in tens
    ('[[packs]]\nid = "ice"\nname = "I"\ncredits = 7\namount = 1550\ncurrency = "isk"\n',
     "pack 'ice' \\(number 1\\): amount 1550: ISK prices are whole units"),
    ('[[packs]]\nid = "kw"\nname = "K"\ncredits = 7\namount = 5127\ncurrency = "KWD"\n',
     "pack 'kw' \\(number 1\\): amount 5127: KWD prices end in 0"),
])
def test_a_bad_catalogue_is_refused_clearly(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "packs.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        Catalogue.load(path)


@pytest.mark.subprocess
def test_serve_reports_a_config_error_without_a_traceback(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "CREDITDESK_DB": str(tmp_path / "db"), "CREDITDESK_PACKS": str(tmp_path / "no")}
    r = subprocess.run([sys.executable, "-m", "backend", "serve", "--port", "0"], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "cannot read the pack catalogue" in r.stderr and "Traceback" not in r.stderr


def test_check_command(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "CREDITDESK_DB": str(tmp_path / "db.sqlite3")}
    migrate = run_command(["migrate"], env)
    assert migrate.returncode == 0, migrate.stderr
    r = run_command(["check"], env)
    assert r.returncode == 0 and "the ledger adds up" in r.stdout


@pytest.mark.subprocess
def test_serve_explains_a_bad_port_or_host_and_a_port_in_use(tmp_path: Path) -> None:
    import socket

    env = {"PATH": "/usr/bin:/bin", "CREDITDESK_DB": str(tmp_path / "db.sqlite3")}

    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "backend", "serve", *args], env=env, capture_output=True,
                              text=True, timeout=30)

    for args, message in ((["--port", "99999"], "not a port number"), (["--port", "http"], "not a port number"),
                          (["--host", "nonsense.invalid"], "Give an address of this machine")):
        r = serve(*args)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = serve("--port", str(busy.getsockname()[1]))
    assert r.returncode == 2 and "Is another server using that port?" in r.stderr


def test_database_and_redis_settings_for_replicas() -> None:
    settings = Settings.from_env({"CREDITDESK_DATABASE_URL": "postgresql://u:secret-pw@db/creditdesk",
                                  "CREDITDESK_DB_POOL_SIZE": "7", "CREDITDESK_REDIS_URL": "redis://:other-pw@redis:6379/0"})
    assert settings.database == "postgresql://u:secret-pw@db/creditdesk" and settings.db_pool_size == 7
    assert settings.redis_url == "redis://:other-pw@redis:6379/0"
    assert "secret-pw" not in repr(settings) and "other-pw" not in repr(settings)
    for name, value, message in (("CREDITDESK_REDIS_URL", "localhost:6379", "CREDITDESK_REDIS_URL must be"),
                                 ("CREDITDESK_DATABASE_URL", "mysql://db/x", "CREDITDESK_DATABASE_URL must be"),
                                 ("CREDITDESK_DB_POOL_SIZE", "0", "CREDITDESK_DB_POOL_SIZE must be"),
                                 ("CREDITDESK_SIGNIN_LIMIT_PER_ACCOUNT", "60 an hour", "such as 60/hour;200/day"),
                                 ("CREDITDESK_AUTH_RATE_LIMIT_PER_ADDRESS", "30/fortnight", "such as")):
        with pytest.raises(ConfigError, match=message):
            Settings.from_env({name: value})


PROFILE = "CREDITDESK_PASSWORD_HASH_PROFILE"


def test_the_test_password_hash_profile_is_cheap_opt_in_and_verifies_either_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CREDITDESK_PASSWORD_HASH_PROFILE=test (test runs only) hashes with argon2's cheapest parameters; unset is
    argon2-cffi's own profile; anything else is refused; a hash from either verifies under the other."""
    from argon2 import PasswordHasher, profiles

    from backend import accounts
    from backend.config import password_hash_profile

    assert password_hash_profile({}) == "default" and password_hash_profile({PROFILE: " "}) == "default"
    assert password_hash_profile({PROFILE: "test"}) == "test"
    with pytest.raises(ConfigError, match="CREDITDESK_PASSWORD_HASH_PROFILE is test"):
        Settings.from_env({PROFILE: "cheap"})

    hashes = {}
    for profile in ("", "test"):
        monkeypatch.setenv(PROFILE, profile)
        accounts._hasher.cache_clear()
        hashes[profile] = accounts.hash_password("correct horse battery")
    accounts._hasher.cache_clear()
    default = PasswordHasher()
    assert f"$m={default.memory_cost},t={default.time_cost},p={default.parallelism}$" in hashes[""]
    cheapest = profiles.CHEAPEST
    assert f"$m={cheapest.memory_cost},t={cheapest.time_cost},p={cheapest.parallelism}$" in hashes["test"]
    for profile in ("", "test"):
        monkeypatch.setenv(PROFILE, profile)
        accounts._hasher.cache_clear()
        assert all(accounts._verify_password(made, "correct horse battery") for made in hashes.values())
        assert not accounts._verify_password(hashes[""], "wrong")
    accounts._hasher.cache_clear()


def test_expiry_warnings_and_the_grant_sweep_are_read_or_refused_clearly() -> None:
    from datetime import timedelta

    assert Settings.from_env({}).expiry_warnings == (timedelta(days=7), timedelta(days=1))
    assert Settings.from_env({}).grant_sweep_interval == 60
    settings = Settings.from_env({"CREDITDESK_EXPIRY_WARNINGS": "2d, 14d,6h", "CREDITDESK_GRANT_SWEEP_INTERVAL": "0"})
    assert settings.expiry_warnings == (timedelta(days=14), timedelta(days=2), timedelta(hours=6))
    assert settings.grant_sweep_interval == 0
    assert Settings.from_env({"CREDITDESK_EXPIRY_WARNINGS": "off"}).expiry_warnings == ()
    for bad in ("7", "7w", "0d", "400d", "1d,2d,3d,4d,5d,6d"):
        with pytest.raises(ConfigError, match="CREDITDESK_EXPIRY_WARNINGS"):
            Settings.from_env({"CREDITDESK_EXPIRY_WARNINGS": bad})
    with pytest.raises(ConfigError, match="CREDITDESK_GRANT_SWEEP_INTERVAL"):
        Settings.from_env({"CREDITDESK_GRANT_SWEEP_INTERVAL": "-1"})


@pytest.mark.parametrize(("text", "message"), [
    ("[signup_bonus]\ncredits = 0\n", "credits must be a whole number"),
    ("[signup_bonus]\ncredits = 50\nexpires_in_days = 0\n", "expires_in_days"),
    ("[signup_bonus]\ncredits = 50\ncolour = 'red'\n", "needs credits"),
    ("[signup_bonus]\ncredits = 50\ndescription = ''\n", "description"),
])
def test_a_bad_signup_bonus_is_refused_clearly(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "packs.toml"
    path.write_text(resources.path("packs.toml").read_text() + "\n" + text)
    with pytest.raises(ConfigError, match=message):
        Catalogue.load(path)


def test_a_signup_bonus_is_read(tmp_path: Path) -> None:
    path = tmp_path / "packs.toml"
    path.write_text(resources.path("packs.toml").read_text() + "\n[signup_bonus]\ncredits = 37\nexpires_in_days = 9\n")
    bonus = Catalogue.load(path).signup_bonus
    assert bonus is not None and (bonus.credits, bonus.expires_in_days, bonus.description) == (37, 9, "Welcome bonus")
    assert Catalogue.load(resources.path("packs.toml")).signup_bonus is None
