"""Where the app keeps its files, which backend it talks to, and its small settings file."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

from desktop.core._files import atomic_write_text, move_aside

log = logging.getLogger("creditdesk.settings")

APP_NAME = "creditdesk"
HOME_ENV = "CREDITDESK_HOME"
BACKEND_URL_ENV = "CREDITDESK_BACKEND_URL"
DOCS_URL_ENV = "CREDITDESK_DOCS_URL"
SUPPORT_CONTACT_ENV = "CREDITDESK_SUPPORT_CONTACT"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class AppPaths:
    """The app's folders. ``CREDITDESK_HOME=/some/dir`` puts them all under one folder (tests, portable use)."""

    data_dir: Path
    config_dir: Path
    log_dir: Path

    @classmethod
    def default(cls, environ: Mapping[str, str] | None = None) -> AppPaths:
        env = os.environ if environ is None else environ
        home = env.get(HOME_ENV, "").strip()
        if home:
            return cls.under(Path(home).expanduser())
        return cls(
            data_dir=platformdirs.user_data_path(APP_NAME, appauthor=False),
            config_dir=platformdirs.user_config_path(APP_NAME, appauthor=False),
            log_dir=platformdirs.user_log_path(APP_NAME, appauthor=False),
        )

    @classmethod
    def under(cls, root: Path) -> AppPaths:
        root = Path(root)
        return cls(data_dir=root / "data", config_dir=root / "config", log_dir=root / "log")

    def ensure(self) -> AppPaths:
        """Create the folders (private to the user where the OS allows)."""
        for folder in (self.data_dir, self.config_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.json"

    @property
    def purchase_records_file(self) -> Path:
        """The purchases this app has started, kept on disk (its name is that of the first versions' file)."""
        return self.data_dir / "pending-purchases.json"

    @property
    def backend_db(self) -> Path:
        return self.data_dir / "backend.sqlite3"

    @property
    def keyring_index_file(self) -> Path:
        return self.config_dir / "keyring-entries.json"

    @property
    def bundled_backend_file(self) -> Path:
        """Where the bundled backend runs now (URL, process id) and the port it had last."""
        return self.data_dir / "bundled-backend.json"

    @property
    def lock_file(self) -> Path:
        """Held by the running app: one instance per data folder."""
        return self.data_dir / "creditdesk.lock"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "creditdesk.log"

    @property
    def support_reports_dir(self) -> Path:
        """Help → Report a problem: reports that could not be sent, kept with the user's words."""
        return self.data_dir / "support-reports"

    @property
    def support_draft_file(self) -> Path:
        """Help → Report a problem: the words typed and not sent yet."""
        return self.data_dir / "support-draft.txt"

    @property
    def backend_log_file(self) -> Path:
        return self.log_dir / "backend.log"


@dataclass(frozen=True)
class HelpSettings:
    """What the Help menu offers, as the app maker configures it: the documentation's address and the support
    contact (an email or a web address). From the environment (``CREDITDESK_DOCS_URL``,
    ``CREDITDESK_SUPPORT_CONTACT``), else from the build configuration's ``[help]``."""

    docs_url: str | None = None
    support_contact: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, default: HelpSettings | None = None) -> HelpSettings:
        """The environment's, else ``default`` (what the build baked: build.toml's [help])."""
        env = os.environ if environ is None else environ
        default = default or cls()
        docs = env.get(DOCS_URL_ENV, "").strip()
        if docs and urlsplit(docs).scheme not in ("http", "https", "file"):
            log.warning("ignoring %s: not an http(s) or file address", DOCS_URL_ENV)
            docs = ""
        return cls(docs_url=docs or default.docs_url,
                   support_contact=env.get(SUPPORT_CONTACT_ENV, "").strip() or default.support_contact)

    def documentation_url(self) -> str | None:
        """The documentation the app maker configured; None for none (the app then shows its own user guide: a
        README handed to the desktop opened an editor, and the API's description is no user's documentation)."""
        return self.docs_url

    @property
    def support_link(self) -> str | None:
        """Where the support contact opens: ``mailto:`` for an email, the address itself for a web address."""
        contact = self.support_contact
        if not contact:
            return None
        if urlsplit(contact).scheme in ("http", "https", "mailto"):
            return contact
        return f"mailto:{contact}" if _EMAIL.fullmatch(contact) else None


class InvalidBackendUrl(ValueError):
    """The configured backend URL cannot work; the message says why, for the user."""


def validate_backend_url(url: str, source: str = "the backend URL") -> str:
    """``url`` without a trailing slash if it is ``http(s)://host[:port][/path]``; else InvalidBackendUrl."""
    value = url.strip()
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise InvalidBackendUrl(f"{source} {value!r} is not a valid URL.") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidBackendUrl(f"{source} must start with http:// or https:// (got {value!r}).")
    if not parts.hostname:
        raise InvalidBackendUrl(f"{source} {value!r} has no host name.")
    if parts.username is not None or parts.password is not None:
        raise InvalidBackendUrl(f"{source} must not contain a user name or password.")
    if parts.query or parts.fragment:
        raise InvalidBackendUrl(f"{source} must not have a query or fragment (got {value!r}).")
    return value.rstrip("/")


def resolve_backend_url(cli_value: str | None, environ: Mapping[str, str] | None = None,
                        default: str | None = None) -> str | None:
    """The backend to use: ``--backend URL`` wins, then ``CREDITDESK_BACKEND_URL``, then ``default`` (the URL an
    installed app's build configuration gives); None means "start the bundled backend". Raises InvalidBackendUrl
    for a malformed value."""
    env = os.environ if environ is None else environ
    if cli_value is not None and cli_value.strip():
        return validate_backend_url(cli_value, "--backend")
    from_env = env.get(BACKEND_URL_ENV, "").strip()
    if from_env:
        return validate_backend_url(from_env, BACKEND_URL_ENV)
    return default


@dataclass(frozen=True)
class SavedSettings:
    """``accounts`` maps a backend identity (see :mod:`desktop.core.identity`) to the email last signed in there.
    ``last_email`` is the single email of versions before identities, used where ``accounts`` says nothing."""

    last_email: str | None = None
    window_geometry: str | None = None  # base64 of QWidget.saveGeometry()
    accounts: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as they were

    def email_for(self, backend: str) -> str | None:
        """The account last used on ``backend``; ``""`` there means "signed out on purpose"."""
        if backend in self.accounts:
            return self.accounts[backend] or None
        return self.last_email

    def with_email(self, backend: str, email: str | None) -> SavedSettings:
        return replace(self, accounts={**self.accounts, backend: email or ""})

    def to_json(self) -> dict[str, Any]:
        return {**self.extra, "last_email": self.last_email, "window_geometry": self.window_geometry,
                "accounts": dict(self.accounts)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SavedSettings:
        known = {"last_email", "window_geometry"}
        values = {k: data.get(k) for k in known}
        for key, value in values.items():
            if value is not None and not isinstance(value, str):
                log.warning("ignoring the setting %s: not a string", key)
                values[key] = None
        accounts = data.get("accounts") or {}
        if not isinstance(accounts, dict):
            log.warning("ignoring the setting accounts: not an object")
            accounts = {}
        accounts = {k: v for k, v in accounts.items() if isinstance(k, str) and isinstance(v, str)}
        extra = {k: v for k, v in data.items() if k not in known | {"accounts"}}
        return cls(**values, accounts=accounts, extra=extra)


class SettingsStore:
    """The small JSON settings file, written atomically. A corrupt file is moved aside and defaults used."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def load(self) -> SavedSettings:
        with self._lock:
            return self._load()

    def _load(self) -> SavedSettings:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return SavedSettings()
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read the settings file %s (%s); using defaults", self.path, type(exc).__name__)
            return SavedSettings()
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except ValueError:
            moved = move_aside(self.path)
            log.warning("the settings file %s was corrupt; moved to %s, using defaults", self.path, moved)
            return SavedSettings()
        return SavedSettings.from_json(data)

    def save(self, settings: SavedSettings) -> None:
        with self._lock:
            atomic_write_text(self.path, json.dumps(settings.to_json(), indent=2, ensure_ascii=False) + "\n")

    def update(self, **changes: Any) -> SavedSettings:
        """Load, change some fields (``window_geometry=...``), save; returns the result."""
        with self._lock:
            settings = replace(self._load(), **changes)
            atomic_write_text(self.path, json.dumps(settings.to_json(), indent=2, ensure_ascii=False) + "\n")
            return settings

    def remember_email(self, backend: str, email: str | None) -> SavedSettings:
        """File ``email`` as the account last used on ``backend`` (None: signed out there on purpose)."""
        with self._lock:
            settings = self._load().with_email(backend, email)
            atomic_write_text(self.path, json.dumps(settings.to_json(), indent=2, ensure_ascii=False) + "\n")
            return settings
