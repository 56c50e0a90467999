"""Scrubbing secrets out of text that leaves a program, for the backend and the app alike (neither imports the
other; both import this): the app's diagnostics and the errors it shows, the support reports the backend keeps."""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"

# Keys whose values are secrets, in "key=value", "key: value", JSON and Python-repr shapes.
_KEYS = r"(?:password|passwd|pwd|passphrase|secret|client[_-]?secret|[a-z_]*token|api[_-]?key)"
_KEY_LEAD = rf"(?i)(\b{_KEYS}\b[\"']?\s*[:=]\s*)"

# Patterns, not compiled objects: ``re`` compiles each at its first use and keeps it (its cache), so that
# importing this module (with the app's window) compiles nothing.
_RULES: list[tuple[str, str]] = [
    # An Authorization header's whole value, whatever its scheme.
    (r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?)[^\"'\r\n,;}]+", rf"\1{REDACTED}"),
    # Bearer/Basic credentials anywhere else.
    (r"(?i)\b(bearer|basic)(\s+)(?!\[REDACTED\])[A-Za-z0-9._~+/=-]+", rf"\1\2{REDACTED}"),
    # Stripe secret and restricted keys, webhook signing secrets.
    (r"\b(?:sk|rk)_[A-Za-z0-9_]{4,}", REDACTED),
    (r"\bwhsec_[A-Za-z0-9+/=_]+", REDACTED),
    # Credentials in a URL: scheme://user:password@host.
    (r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@", rf"\1{REDACTED}@"),
    # The loopback callback's state in a URL query.
    (r"([?&;]state=)[^&#\s\"']+", rf"\1{REDACTED}"),
    # password="...", 'token': '...'.
    (_KEY_LEAD + r"([\"'])(.*?)(?<!\\)\2", rf"\1\2{REDACTED}\2"),
    # password=..., token: ... (unquoted, up to a separator).
    (_KEY_LEAD + r"(?![\"'])(?!\[REDACTED\])[^\s&,;}\]\"']+", rf"\1{REDACTED}"),
]

# Long runs of token characters. Stripe object ids (cs_..., pi_...) are not secrets and help support.
_LONG_RUN = (
    r"(?<![A-Za-z0-9_\-])"
    r"(?!(?:cs|pi|ch|evt|ord|cus|pm|re|txn|seti|sub|in|price|prod|py)_)"
    r"[A-Za-z0-9_\-]{32,}"
    r"(?![A-Za-z0-9_\-])"
)
# Any email, whatever its letters (internationalised local parts and domains included): the first character of
# the local part and the domain stay, for support.
_LOCAL = r"[\w.!#$%&'*+/=?^`{|}~-]"
_EMAIL = (
    rf"(?<!{_LOCAL})({_LOCAL}){_LOCAL}*@((?:[\w-]+\.)+(?:xn--[\w-]+|[^\W\d_]{{2,}}))(?![\w-])"
)


def _looks_random(candidate: str) -> bool:
    classes = sum((any(c.islower() for c in candidate), any(c.isupper() for c in candidate),
                   any(c.isdigit() for c in candidate)))
    return classes >= 2


def mask_email(email: str | None) -> str | None:
    """``john@example.com`` -> ``j***@example.com``; ``jürgen@bücher.de`` -> ``j***@bücher.de``."""
    if not email:
        return email
    local, at, domain = email.strip().rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def redact(text: str, known_secrets: Iterable[str] = ()) -> str:
    """``text`` without bearer tokens, Stripe keys, webhook secrets, passwords, URL credentials, long random
    tokens or any of ``known_secrets``; emails are masked."""
    for secret in known_secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _RULES:
        text = re.sub(pattern, replacement, text)
    text = re.sub(_LONG_RUN, lambda m: REDACTED if _looks_random(m.group(0)) else m.group(0), text)
    return re.sub(_EMAIL, r"\1***@\2", text)
