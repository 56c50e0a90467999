"""Test doubles for the world outside the app: the system browser and the system keyring.

(The backend and Stripe are never faked: tests run the real backend and a Stripe-compatible server.)
"""

from __future__ import annotations

import re
import threading
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import keyring.backend
import keyring.errors
import requests

_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>\s*<button[^>]*id="([a-z]+)"', re.S)


def memory_keyring_class() -> type[keyring.backend.KeyringBackend]:
    """An in-memory keyring. Defined only when asked for, and never viable for keyring's own detection
    (its priority raises), so that importing this module can never make it anyone's default keyring."""

    class MemoryKeyring(keyring.backend.KeyringBackend):
        @keyring.backend.properties.classproperty
        def priority(cls) -> float:
            raise RuntimeError("a test-only keyring; set it explicitly")

        def __init__(self) -> None:
            super().__init__()
            self.entries: dict[tuple[str, str], str] = {}
            self.fail_with: Exception | None = None

        def get_password(self, service: str, username: str) -> str | None:
            if self.fail_with:
                raise self.fail_with
            return self.entries.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            if self.fail_with:
                raise self.fail_with
            self.entries[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            if self.fail_with:
                raise self.fail_with
            if (service, username) not in self.entries:
                raise keyring.errors.PasswordDeleteError("not found")
            del self.entries[(service, username)]

    return MemoryKeyring


class FakeBrowser:
    """The app's injected "open URL" function, playing a browser on a thread of its own.

    ``action``: ``pay`` (press Pay and follow the redirects to the app's callback), ``cancel``,
    ``pay_no_return`` (pay, but the tab is closed before the redirect reaches the app),
    ``wrong_state`` (pay, then arrive at the callback with a forged state), ``close_tab`` (open the
    page and do nothing) or ``fail`` (the browser does not open: the opener returns False).
    """

    def __init__(self, action: str = "pay") -> None:
        self.action = action
        self.opened: list[str] = []
        self.callback_statuses: list[int] = []
        self.callback_pages: list[str] = []
        self.callback_urls: list[str] = []
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    def __call__(self, url: str) -> bool:
        self.opened.append(url)
        if self.action == "fail":
            return False
        thread = threading.Thread(target=self._browse, args=(url, self.action), daemon=True)
        thread.start()
        self._threads.append(thread)
        return True

    def wait(self, timeout: float = 15) -> None:
        for thread in self._threads:
            thread.join(timeout)
        if self.errors:
            raise self.errors[0]

    def _browse(self, url: str, action: str) -> None:
        try:
            http = requests.Session()
            http.trust_env = False
            page = http.get(url, timeout=15)
            page.raise_for_status()
            if action == "close_tab":
                return
            forms = {button: urljoin(url, target) for target, button in _FORM.findall(page.text)}
            response = http.post(forms["cancel" if action == "cancel" else "pay"], allow_redirects=False,
                                 timeout=30)
            while response.status_code in (302, 303):
                location = urljoin(response.url, response.headers["Location"])
                if "/callback" in urlsplit(location).path:
                    self.callback_urls.append(location)
                    if action == "pay_no_return":
                        return
                    if action == "wrong_state":
                        location = _with_state(location, "forged-state")
                    answer = http.get(location, timeout=15)
                    self.callback_statuses.append(answer.status_code)
                    self.callback_pages.append(answer.text)
                    return
                response = http.get(location, allow_redirects=False, timeout=30)
            raise AssertionError(f"checkout ended at {response.url} ({response.status_code}) without a callback")
        except BaseException as exc:
            self.errors.append(exc)


def _with_state(url: str, state: str) -> str:
    parts = urlsplit(url)
    query = [(k, state if k == "state" else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query)))
