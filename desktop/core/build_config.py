"""The build's configuration: what the app maker chose for an installed app, in one file read at build time.

``packaging/build.toml`` (or another file given to ``make dist CONFIG=...``) says which backend the installed app
talks to, its name and icon, its update channel, and whether the build bundles a backend and starts it (the stub
demo build does). ``make dist`` reads it with :func:`read_build_toml` and bakes it into the bundle as
``build-config.json`` beside this module; the installed app reads that with :func:`current`. Run from source there
is no such file: the app is a developer's checkout (no backend URL, the bundled backend in stub mode).

``--backend`` and ``CREDITDESK_BACKEND_URL`` still win over the baked backend URL (see
:func:`desktop.core.settings.resolve_backend_url`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from desktop.core.settings import InvalidBackendUrl, validate_backend_url

BAKED_FILE = "build-config.json"
# The frozen app's hidden entry that runs ``creditdesk-backend`` (argv after it), as ``python -m backend`` does
# from source: the bundle has no Python of its own to run a module with.
SERVE_BACKEND_ARG = "--serve-backend"
_CHANNEL = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")
# The TOML's sections and keys, with the BuildConfig field each one fills.
_KEYS = {
    "app": {"name": "app_name", "icon": "icon"},
    "backend": {"url": "backend_url", "bundled": "bundles_backend"},
    "updates": {"channel": "update_channel", "url": "update_url", "root": "update_root"},
    "help": {"docs_url": "help_docs_url", "support_contact": "help_support_contact"},
}


class BuildConfigError(ValueError):
    """The build configuration cannot make a working app; the message names the file and the key."""


@dataclass(frozen=True)
class BuildConfig:
    app_name: str = "Creditdesk"
    # The icon the build renders at every size (SVG or PNG), as the file gives it (relative to the file's folder).
    icon: str = "../resources/icons/creditdesk.svg"
    # The backend the installed app talks to; None: none (the bundled one if the build bundles it, else --backend).
    backend_url: str | None = None
    # Whether the bundle holds the backend and the app starts it when no backend URL is given (the demo build).
    bundles_backend: bool = True
    update_channel: str = "stable"
    # Where updates are published (the update repository: metadata/ and targets/); None: the build does not
    # update itself.
    update_url: str | None = None
    # The update repository's trusted root metadata (`make release-keys` makes it), relative to the file's folder:
    # baked into the bundle as the keys its updates must be signed with. Required with update_url.
    update_root: str | None = None
    # What Help offers (CREDITDESK_DOCS_URL and CREDITDESK_SUPPORT_CONTACT still win): the documentation's address
    # and the support contact (an email or a web address); None: the app's own user guide, no contact.
    help_docs_url: str | None = None
    help_support_contact: str | None = None
    # Filled at build time from the project: the version the installed app says it is.
    version: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BuildConfig:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise BuildConfigError("the baked build configuration is not a JSON object")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def describe_backend(self) -> str:
        """What the installed app talks to when nothing else is given, in words."""
        if self.backend_url:
            return self.backend_url
        return "its bundled backend (stub payments)" if self.bundles_backend else "no backend (give --backend URL)"


def parse_build_toml(text: str, source: str = "the build configuration") -> BuildConfig:
    """A BuildConfig from the TOML's text; BuildConfigError for anything a build must not go ahead with."""
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BuildConfigError(f"{source} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for section, table in data.items():
        keys = _KEYS.get(section)
        if keys is None or not isinstance(table, dict):
            raise BuildConfigError(f"{source}: unknown section [{section}] (known: {', '.join(_KEYS)})")
        for key, value in table.items():
            if key not in keys:
                raise BuildConfigError(f"{source}: unknown key {key!r} in [{section}] (known: {', '.join(keys)})")
            values[keys[key]] = value
    return _checked(BuildConfig(**values), source)


def read_build_toml(path: Path) -> BuildConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BuildConfigError(f"cannot read the build configuration {path}: {exc.strerror or exc}") from None
    return parse_build_toml(text, str(path))


def _checked(config: BuildConfig, source: str) -> BuildConfig:
    def text(key: str, value: object) -> str:
        if not isinstance(value, str):
            raise BuildConfigError(f"{source}: {key} must be a string (got {value!r})")
        return value.strip()

    name = text("app.name", config.app_name)
    if not name or any(ch in name for ch in "\n\r\t/"):
        raise BuildConfigError(f"{source}: app.name must be a short name on one line (got {config.app_name!r})")
    icon = text("app.icon", config.icon)
    if not icon.lower().endswith((".svg", ".png")):
        raise BuildConfigError(f"{source}: app.icon must be an SVG or PNG file (got {config.icon!r})")
    if not isinstance(config.bundles_backend, bool):
        raise BuildConfigError(f"{source}: backend.bundled must be true or false (got {config.bundles_backend!r})")
    backend_url = text("backend.url", config.backend_url or "") or None
    if backend_url is not None:
        try:
            backend_url = validate_backend_url(backend_url, "backend.url")
        except InvalidBackendUrl as exc:
            raise BuildConfigError(f"{source}: {exc}") from None
    channel = text("updates.channel", config.update_channel)
    if not _CHANNEL.fullmatch(channel):
        raise BuildConfigError(f"{source}: updates.channel must be a short lower-case name such as stable or beta "
                               f"(got {config.update_channel!r})")
    update_url = text("updates.url", config.update_url or "") or None
    if update_url is not None:
        try:
            update_url = validate_backend_url(update_url, "updates.url")
        except InvalidBackendUrl as exc:
            raise BuildConfigError(f"{source}: {exc}") from None
    update_root = text("updates.root", config.update_root or "") or None
    if update_url is not None and update_root is None:
        raise BuildConfigError(f"{source}: updates.url needs updates.root, the update repository's root.json "
                               "(make release-keys makes it): the keys the app's updates must be signed with")
    docs_url = text("help.docs_url", config.help_docs_url or "") or None
    if docs_url is not None and urlsplit(docs_url).scheme not in ("http", "https"):
        raise BuildConfigError(f"{source}: help.docs_url must start with http:// or https:// (got {docs_url!r})")
    contact = text("help.support_contact", config.help_support_contact or "") or None
    if contact is not None and any(ch in contact for ch in "\n\r\t"):
        raise BuildConfigError(f"{source}: help.support_contact must be on one line (got {contact!r})")
    return BuildConfig(app_name=name, icon=icon, backend_url=backend_url, bundles_backend=config.bundles_backend,
                       update_channel=channel, update_url=update_url, update_root=update_root,
                       help_docs_url=docs_url, help_support_contact=contact, version=config.version)


def load_baked(path: Path) -> BuildConfig:
    """The configuration baked at ``path``; the defaults (a developer checkout's) when there is none."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return BuildConfig()
    return BuildConfig.from_json(text)


@cache
def current() -> BuildConfig:
    """The configuration baked into this installation, or a developer checkout's (the defaults) from source."""
    return load_baked(Path(__file__).with_name(BAKED_FILE))
