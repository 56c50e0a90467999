"""Backend configuration, read from the environment (see the contract's table)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path

import platformdirs

import resources

APP_NAME = "creditdesk"


class ConfigError(Exception):
    """The configuration cannot work; the message tells the operator what to change."""


# CREDITDESK_PASSWORD_HASH_PROFILE, for test runs only: ``test`` hashes passwords with argon2's cheapest
# parameters (microseconds instead of a quarter of a second), so that suites signing up thousands of users run
# quickly. Never set it where real passwords are kept; unset (the default, and the only production setting) is
# argon2-cffi's own profile (RFC 9106, low memory). A hash carries its parameters: each verifies under either.
PASSWORD_HASH_PROFILE = "CREDITDESK_PASSWORD_HASH_PROFILE"  # noqa: S105 (the name of a setting)
PASSWORD_HASH_PROFILES = ("default", "test")


def password_hash_profile(environ: Mapping[str, str] | None = None) -> str:
    """``default``, or ``test`` when CREDITDESK_PASSWORD_HASH_PROFILE says so (tests only)."""
    env = os.environ if environ is None else environ
    value = env.get(PASSWORD_HASH_PROFILE, "").strip().lower() or "default"
    if value not in PASSWORD_HASH_PROFILES:
        raise ConfigError(f"{PASSWORD_HASH_PROFILE} is test (for test runs only) or unset, not {value!r}.")
    return value


def default_db_path() -> Path:
    return platformdirs.user_data_path(APP_NAME, appauthor=False) / "backend.sqlite3"


@dataclass(frozen=True)
class Settings:
    db_path: Path = field(default_factory=default_db_path)
    # CREDITDESK_DATABASE_URL: sqlite:///path or postgresql://...; wins over db_path when set. Kept out of
    # repr() because a PostgreSQL URL may hold a password.
    database_url: str | None = field(default=None, repr=False)
    db_pool_size: int = 10
    # CREDITDESK_REDIS_URL: where replicas share their rate-limit counts (unset: each process counts alone).
    # Kept out of repr() because it may hold a password.
    redis_url: str | None = field(default=None, repr=False)
    public_url: str | None = None
    packs_path: Path = field(default_factory=lambda: resources.path("packs.toml"))
    # Secrets are kept out of repr() so that they never reach a log line by accident.
    stripe_secret_key: str | None = field(default=None, repr=False)
    stripe_webhook_secret: str | None = field(default=None, repr=False)
    stripe_api_base: str | None = None
    token_ttl_seconds: int = 30 * 24 * 3600
    # Reverse proxies whose X-Forwarded-For is believed (CREDITDESK_TRUSTED_PROXIES); none by default.
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    # Seconds between the automatic reconciles of `serve` in Stripe mode; 0 turns them off.
    reconcile_interval: int = 300
    # Seconds between `serve`'s sweeps of expired grants and its credits_expiring alerts
    # (CREDITDESK_GRANT_SWEEP_INTERVAL; 0 turns them off: every read still treats an expired grant as expired,
    # and `check` sweeps).
    grant_sweep_interval: int = 60
    # How long before a grant expires its credits_expiring alerts come (CREDITDESK_EXPIRY_WARNINGS, e.g. "7d,1d";
    # "off": none).
    expiry_warnings: tuple[timedelta, ...] = (timedelta(days=7), timedelta(days=1))
    # CREDITDESK_PROMOTION_CODES: buyers may enter promotion codes at checkout (Stripe's own in Stripe mode, the
    # catalogue's [[promotion_codes]] in stub mode).
    promotion_codes: bool = False
    # CREDITDESK_AUTOMATIC_TAX: tax collected at checkout (Stripe Tax in Stripe mode; the catalogue's
    # stub_tax_percent in stub mode), on top of prices or in them as each pack's tax_behavior says.
    automatic_tax: bool = False
    # CREDITDESK_REQUIRE_DESCRIPTION: the host application asks every spend and hold to say what it is for
    # (a description that is not blank), else 422 description_required.
    require_description: bool = False
    # How long the bodies of Stripe's events and failed deliveries are kept (at least Stripe's own 30 days).
    event_retention_days: int = 90
    # Limits on sign-in and sign-up, to stop password guessing ("N/period", see the `limits` package).
    # Per client address, every attempt; per account and address together, the sign-ins, in stacked
    # windows so that the wait grows for a guesser who keeps going while the owner, elsewhere, signs in.
    auth_limit_per_address: str = "30/minute"
    signin_limit_per_account_and_address: str = "5/minute;15/hour;30/day"
    # Per account, from every address together (CREDITDESK_SIGNIN_LIMIT_PER_ACCOUNT): a ceiling on wrong
    # passwords from many places at once (the owner's right ones never count). Above what one place may try (the
    # limit above), so that one place alone never locks the owner out; many together do, for the window, and
    # that is the trade.
    signin_limit_per_account: str = "60/hour;200/day"
    checkout_limit_per_user: str = "10/minute"
    verify_limit_per_user: str = "20/minute"
    # Help → Report a problem (POST /api/support/reports): a person writing to support, not a script.
    support_report_limit_per_user: str = "5/hour"
    # The success and cancel pages need no sign-in: hits per client address, and per checkout.
    page_limit_per_address: str = "120/minute"
    page_limit_per_checkout: str = "12/minute"
    # CREDITDESK_LOG_FORMAT: text (one line a record) or json (JSON lines with the request id).
    log_format: str = "text"
    # CREDITDESK_METRICS_PORT: Prometheus metrics on a port of their own (unset: not served), on
    # CREDITDESK_METRICS_HOST (loopback unless a scraper elsewhere needs them).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # The hot path's statements on SQLite's own cursor (backend/prepared.py); off runs all through SQLAlchemy.
    prepared_statements: bool = True
    # Mail (backend/mail.py): through SMTP when CREDITDESK_SMTP_HOST is set, else written as .eml files into
    # CREDITDESK_MAIL_OUTBOX (default: the folder "outbox" beside the SQLite database). The password is kept out
    # of repr() so that it never reaches a log line.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_starttls: bool = True
    mail_from: str = "Creditdesk <no-reply@localhost>"
    mail_outbox: Path | None = None
    # The seller a receipt names (CREDITDESK_SELLER_NAME, CREDITDESK_SELLER_ADDRESS with its lines parted by "\n",
    # CREDITDESK_SELLER_TAX_ID): a tax document says who sold, from where, under which tax id.
    seller_name: str = "Creditdesk"
    seller_address: tuple[str, ...] = ()
    seller_tax_id: str | None = None
    # Password resets: codes asked for per email and per client address, and codes tried per client address.
    reset_limit_per_email: str = "3/15minute;10/day"
    reset_limit_per_address: str = "20/hour;100/day"

    @property
    def database(self) -> str:
        """The database URL the backend uses."""
        return self.database_url or f"sqlite:///{self.db_path}"

    @property
    def database_name(self) -> str:
        """The database as a message may name it: the SQLite file, or the URL without its password."""
        if self.database_url is None:
            return str(self.db_path)
        from sqlalchemy.engine import make_url

        return make_url(self.database_url).render_as_string(hide_password=True)

    @property
    def outbox_folder(self) -> Path:
        """Where mail goes when there is no SMTP server: CREDITDESK_MAIL_OUTBOX, or "outbox" beside the database."""
        return self.mail_outbox or self.db_path.parent / "outbox"

    @property
    def stripe_livemode(self) -> bool:
        """Whether the Stripe key is a live one: only events of the same mode are applied."""
        return (self.stripe_secret_key or "").startswith(("sk_live_", "rk_live_"))

    @property
    def payments_mode(self) -> str:
        return "stripe" if self.stripe_secret_key else "stub"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        kwargs: dict[str, object] = {}
        if db := get("CREDITDESK_DB"):
            kwargs["db_path"] = Path(db).expanduser()
        if packs := get("CREDITDESK_PACKS"):
            kwargs["packs_path"] = Path(packs).expanduser()
        if database_url := get("CREDITDESK_DATABASE_URL"):
            kwargs["database_url"] = database_url
        if redis_url := get("CREDITDESK_REDIS_URL"):
            kwargs["redis_url"] = redis_url
        if pool_size := get("CREDITDESK_DB_POOL_SIZE"):
            if not pool_size.isdigit() or not 1 <= int(pool_size) <= 1000:
                raise ConfigError(f"CREDITDESK_DB_POOL_SIZE must be a whole number from 1 to 1000, not {pool_size!r}.")
            kwargs["db_pool_size"] = int(pool_size)
        if (interval := get("CREDITDESK_RECONCILE_INTERVAL")) is not None:
            if not interval.isdigit() or int(interval) > 7 * 24 * 3600:
                raise ConfigError("CREDITDESK_RECONCILE_INTERVAL is the number of seconds between automatic "
                                  f"reconciles (0 turns them off), up to a week; not {interval!r}.")
            kwargs["reconcile_interval"] = int(interval)
        if (interval := get("CREDITDESK_GRANT_SWEEP_INTERVAL")) is not None:
            if not interval.isdigit() or int(interval) > 24 * 3600:
                raise ConfigError("CREDITDESK_GRANT_SWEEP_INTERVAL is the number of seconds between sweeps of expired "
                                  f"grants (0 turns them off), up to a day; not {interval!r}.")
            kwargs["grant_sweep_interval"] = int(interval)
        if (warnings := get("CREDITDESK_EXPIRY_WARNINGS")) is not None:
            kwargs["expiry_warnings"] = parse_leads("CREDITDESK_EXPIRY_WARNINGS", warnings)
        if (retention := get("CREDITDESK_EVENT_RETENTION_DAYS")) is not None:
            if not retention.isdigit() or not 30 <= int(retention) <= 3650:
                raise ConfigError("CREDITDESK_EVENT_RETENTION_DAYS must be a whole number of days from 30 (Stripe "
                                  f"keeps events 30 days) to 3650; not {retention!r}.")
            kwargs["event_retention_days"] = int(retention)
        if per_address := get("CREDITDESK_AUTH_RATE_LIMIT_PER_ADDRESS"):
            kwargs["auth_limit_per_address"] = parse_limits("CREDITDESK_AUTH_RATE_LIMIT_PER_ADDRESS", per_address)
        if per_account := get("CREDITDESK_SIGNIN_LIMIT_PER_ACCOUNT"):
            kwargs["signin_limit_per_account"] = parse_limits("CREDITDESK_SIGNIN_LIMIT_PER_ACCOUNT", per_account)
        if (log_format := get("CREDITDESK_LOG_FORMAT")) is not None:
            if log_format.lower() not in ("text", "json"):
                raise ConfigError(f"CREDITDESK_LOG_FORMAT is text or json, not {log_format!r}.")
            kwargs["log_format"] = log_format.lower()
        if (metrics_port := get("CREDITDESK_METRICS_PORT")) is not None:
            if not metrics_port.isdigit() or not 0 <= int(metrics_port) <= 65535:
                raise ConfigError(f"CREDITDESK_METRICS_PORT is a port number (0 to 65535), not {metrics_port!r}.")
            kwargs["metrics_port"] = int(metrics_port)
        if metrics_host := get("CREDITDESK_METRICS_HOST"):
            kwargs["metrics_host"] = metrics_host
        switches = (("CREDITDESK_PROMOTION_CODES", "promotion_codes"), ("CREDITDESK_AUTOMATIC_TAX", "automatic_tax"),
                    ("CREDITDESK_REQUIRE_DESCRIPTION", "require_description"))
        for name, key in switches:
            if (switch := get(name)) is not None:
                if switch.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ConfigError(f"{name} is 1 (on) or 0 (off), not {switch!r}.")
                kwargs[key] = switch.lower() in ("1", "true", "yes", "on")
        if (fast := get("CREDITDESK_PREPARED_STATEMENTS")) is not None:
            if fast.lower() not in ("on", "off"):
                raise ConfigError(f"CREDITDESK_PREPARED_STATEMENTS is on or off, not {fast!r}.")
            kwargs["prepared_statements"] = fast.lower() == "on"
        kwargs.update(_mail_settings(get))
        kwargs.update(_seller_settings(get))
        if per_email := get("CREDITDESK_RESET_LIMIT_PER_EMAIL"):
            kwargs["reset_limit_per_email"] = parse_limits("CREDITDESK_RESET_LIMIT_PER_EMAIL", per_email)
        if reset_per_address := get("CREDITDESK_RESET_LIMIT_PER_ADDRESS"):
            kwargs["reset_limit_per_address"] = parse_limits("CREDITDESK_RESET_LIMIT_PER_ADDRESS", reset_per_address)
        password_hash_profile(env)  # a typo stops `serve` at once, not at the first sign-up
        if proxies := get("CREDITDESK_TRUSTED_PROXIES"):
            kwargs["trusted_proxies"] = parse_networks("CREDITDESK_TRUSTED_PROXIES", proxies)
        settings = cls(
            public_url=(get("CREDITDESK_PUBLIC_URL") or "").rstrip("/") or None,
            stripe_secret_key=get("STRIPE_SECRET_KEY"),
            stripe_webhook_secret=get("STRIPE_WEBHOOK_SECRET"),
            stripe_api_base=(get("STRIPE_API_BASE") or "").rstrip("/") or None,
            **kwargs,  # type: ignore[arg-type]
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.database_url is not None and not self.database_url.startswith(
            ("sqlite:///", "postgresql://", "postgresql+psycopg://")
        ):
            raise ConfigError(
                "CREDITDESK_DATABASE_URL must be sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DATABASE "
                f"(it starts with {self.database_url.split(':', 1)[0]!r})."
            )
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                "CREDITDESK_REDIS_URL must be redis://[:PASSWORD@]HOST[:PORT][/DB], rediss://... or unix:///PATH "
                f"(it starts with {self.redis_url.split(':', 1)[0]!r})."
            )
        if self.stripe_secret_key and not self.stripe_webhook_secret:
            raise ConfigError(
                "STRIPE_SECRET_KEY is set but STRIPE_WEBHOOK_SECRET is not: Stripe mode needs the webhook "
                "signing secret (whsec_...) of your endpoint, from the Stripe dashboard or `stripe listen`. "
                "Unset STRIPE_SECRET_KEY to run in stub payments mode."
            )
        if self.stripe_secret_key and self.stripe_secret_key.startswith("pk_"):
            raise ConfigError("STRIPE_SECRET_KEY holds a publishable key (pk_...); it needs the secret key (sk_...).")


def _seller_settings(get: Callable[[str], str | None]) -> dict[str, object]:
    """The seller's name, address lines and tax id, as receipts print them (each line at most 200 characters)."""
    name, tax_id, address = get("CREDITDESK_SELLER_NAME"), get("CREDITDESK_SELLER_TAX_ID"), get(
        "CREDITDESK_SELLER_ADDRESS")
    # A line break is "\n" as two characters (an environment file's one line) or a real one.
    lines = tuple(line.strip() for line in (address or "").replace("\\n", "\n").splitlines() if line.strip())
    for setting, values in (("CREDITDESK_SELLER_NAME", (name,)), ("CREDITDESK_SELLER_ADDRESS", lines),
                            ("CREDITDESK_SELLER_TAX_ID", (tax_id,))):
        if any(value is not None and (len(value) > 200 or not value.isprintable()) for value in values):
            raise ConfigError(f"{setting} takes printable text of at most 200 characters a line.")
    return {"seller_address": lines, "seller_tax_id": tax_id, **({"seller_name": name} if name else {})}


def _mail_settings(get: Callable[[str], str | None]) -> dict[str, object]:
    """The CREDITDESK_SMTP_* and CREDITDESK_MAIL_* settings that are set, checked."""
    found: dict[str, object] = {}
    for name, key in (("CREDITDESK_SMTP_HOST", "smtp_host"), ("CREDITDESK_SMTP_USER", "smtp_user"),
                      ("CREDITDESK_SMTP_PASSWORD", "smtp_password"), ("CREDITDESK_MAIL_FROM", "mail_from")):
        if (value := get(name)) is not None:
            found[key] = value
    if (port := get("CREDITDESK_SMTP_PORT")) is not None:
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(f"CREDITDESK_SMTP_PORT is a port number (1 to 65535), not {port!r}.")
        found["smtp_port"] = int(port)
    if (starttls := get("CREDITDESK_SMTP_STARTTLS")) is not None:
        if starttls.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ConfigError(f"CREDITDESK_SMTP_STARTTLS is 1 (on, the default) or 0 (off), not {starttls!r}.")
        found["smtp_starttls"] = starttls.lower() in ("1", "true", "yes", "on")
    if outbox := get("CREDITDESK_MAIL_OUTBOX"):
        found["mail_outbox"] = Path(outbox).expanduser()
    if "mail_from" in found and "@" not in str(found["mail_from"]):
        raise ConfigError(f"CREDITDESK_MAIL_FROM is an address such as \"Creditdesk <help@example.com>\", not "
                          f"{found['mail_from']!r}.")
    return found


def parse_leads(name: str, text: str) -> tuple[timedelta, ...]:
    """Lead times such as ``7d,1d`` or ``48h`` (at most 5, each up to 365 days); ``off`` or nothing: none."""
    if text.strip().lower() in ("", "off", "0"):
        return ()
    leads: list[timedelta] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*([0-9]{1,4})([dh])\s*", part)
        lead = None if match is None else (
            timedelta(days=int(match.group(1))) if match.group(2) == "d" else timedelta(hours=int(match.group(1))))
        if lead is None or not timedelta(0) < lead <= timedelta(days=365):
            raise ConfigError(f"{name} lists lead times such as 7d,1d or 48h (up to 365 days), or off; not {text!r}.")
        leads.append(lead)
    if len(leads) > 5:
        raise ConfigError(f"{name} lists at most 5 lead times, not {len(leads)}.")
    return tuple(sorted(set(leads), reverse=True))


def parse_limits(name: str, text: str) -> str:
    """A rate limit as the `limits` package reads it (``"5/minute;20/hour"``), checked at start: a typo would
    otherwise fail every request it applies to."""
    from limits import parse_many

    try:
        parse_many(text)
    except ValueError:
        raise ConfigError(f"{name} is one or more limits such as 60/hour;200/day, not {text!r}.") from None
    return text


def parse_networks(name: str, text: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """``"10.0.0.1, 192.168.0.0/16 ::1"`` as networks; a ConfigError names the entry that is not one."""
    networks = []
    for entry in text.replace(",", " ").split():
        try:
            networks.append(ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: {entry!r} is not an IP address or network (such as 10.0.0.1 or "
                              "10.0.0.0/8)") from None
    return tuple(networks)
