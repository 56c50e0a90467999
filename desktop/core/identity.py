"""Which backend this is, stably: what sign-ins, purchases in flight and settings are filed under.

The bundled backend listens on a port that may change from one start to the next, so its URL cannot name it:
it is named by its database instead (``bundled:<hash of the database path>``), and keeps that name across
restarts of the app and of the backend itself. A backend given by URL (``--backend``) is named by its URL,
written one way (scheme and host in lower case, no default port, no trailing slash).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BUNDLED_PREFIX = "bundled:"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_url(url: str) -> str:
    """``HTTP://Example.COM:443/api/`` -> ``http://example.com:443/api``; ``https://x:443`` -> ``https://x``."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{parts.port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


@dataclass(frozen=True)
class BackendIdentity:
    key: str  # what tokens, purchase records and per-backend settings are filed under
    label: str  # for people: "the built-in server" or the URL

    @property
    def bundled(self) -> bool:
        return self.key.startswith(BUNDLED_PREFIX)

    @classmethod
    def for_url(cls, url: str) -> BackendIdentity:
        key = normalize_url(url)
        return cls(key=key, label=key)

    @classmethod
    def for_bundled(cls, db_path: Path) -> BackendIdentity:
        digest = hashlib.sha256(str(Path(db_path).expanduser().resolve()).encode()).hexdigest()[:16]
        return cls(key=BUNDLED_PREFIX + digest, label="the built-in server")

    def __str__(self) -> str:
        return self.key
