"""Reading the backend's browser pages in tests: the outcome they state and the hand-off to the app."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

_HANDOFF = re.compile(r'id="handoff"[^>]*?data-url="([^"]*)"', re.S)
_OUTCOME = re.compile(r'id="outcome" data-status="([^"]*)"')


def handoff_url(page: str) -> str | None:
    """The desktop app's callback URL that the page hands the result to (by a background request), if any."""
    match = _HANDOFF.search(page)
    return html.unescape(match.group(1)) if match else None


def handoff_query(page: str) -> dict[str, list[str]]:
    url = handoff_url(page)
    assert url is not None, "the page hands nothing to the app"
    return parse_qs(urlsplit(url).query)


def outcome(page: str) -> str | None:
    """The order status the page states (``paid``, ``pending``, ``cancelled``, ...)."""
    match = _OUTCOME.search(page)
    return match.group(1) if match else None
