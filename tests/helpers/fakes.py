"""Test doubles for the world outside the app: the system browser and the system keyring (in memory, or in a
file shared with app processes a test starts).

(The backend and Stripe are never faked: tests run the real backend and a Stripe-compatible server.)
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import keyring.backend
import keyring.errors
import requests

from tests.helpers.pages import handoff_url

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

    ``action``: ``pay`` (press Pay, follow the redirects to the backend's outcome page and, as its script does,
    hand the result to the app's loopback listener in the background), ``cancel``, ``pay_no_return`` (pay, but
    the hand-off never reaches the app: the tab was closed first, or the browser refused the request),
    ``wrong_state`` (pay, then hand off with a forged state), ``close_tab`` (open the page and do nothing) or
    ``fail`` (the browser does not open: the opener returns False).
    """

    def __init__(self, action: str = "pay") -> None:
        self.action = action
        self.opened: list[str] = []
        self.pages: list[str] = []  # the backend's outcome pages the browser ended on
        self.handoff_urls: list[str] = []
        self.handoff_statuses: list[int] = []
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    def __call__(self, url: str, what: str = "the page") -> bool:
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
                response = http.get(urljoin(response.url, response.headers["Location"]), allow_redirects=False,
                                    timeout=30)
            if response.status_code != 200:
                raise AssertionError(f"checkout ended at {response.url} ({response.status_code})")
            self.pages.append(response.text)
            handoff = handoff_url(response.text)
            if handoff is None:
                raise AssertionError(f"the outcome page at {response.url} hands nothing to the app")
            self.handoff_urls.append(handoff)
            if action == "pay_no_return":
                return
            if action == "wrong_state":
                handoff = _with_state(handoff, "forged-state")
            answer = http.get(handoff, headers={"Sec-Fetch-Mode": "no-cors"}, timeout=15)
            self.handoff_statuses.append(answer.status_code)
        except BaseException as exc:
            self.errors.append(exc)


def _with_state(url: str, state: str) -> str:
    parts = urlsplit(url)
    query = [(k, state if k == "state" else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query)))


class FileKeyring(keyring.backend.KeyringBackend):
    """A keyring in a JSON file, shared by a test and the app processes it starts: set
    ``PYTHON_KEYRING_BACKEND=tests.helpers.fakes.FileKeyring`` and ``FAKE_KEYRING_FILE=<path>`` in their
    environment, or make one in the test with ``FileKeyring(path)``. Viable only where ``FAKE_KEYRING_FILE`` is
    set, so that merely importing this module can never make it anyone's default keyring."""

    @keyring.backend.properties.classproperty
    def priority(cls) -> float:
        if not os.environ.get("FAKE_KEYRING_FILE"):
            raise RuntimeError("a test-only keyring: set FAKE_KEYRING_FILE")
        return 0.5

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.path = Path(path or os.environ["FAKE_KEYRING_FILE"])
        self._lock = threading.Lock()

    def env(self) -> dict[str, str]:
        """The environment that makes an app process use this keyring."""
        return {"PYTHON_KEYRING_BACKEND": f"{__name__}.FileKeyring", "FAKE_KEYRING_FILE": str(self.path)}

    def _read(self) -> dict[str, str]:
        try:
            return dict(json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return {}

    def _write(self, entries: dict[str, str]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries), encoding="utf-8")
        os.replace(tmp, self.path)

    @property
    def entries(self) -> dict[tuple[str, str], str]:
        return {tuple(key.split("\n", 1)): value for key, value in self._read().items()}  # type: ignore[misc]

    def get_password(self, service: str, username: str) -> str | None:
        return self._read().get(f"{service}\n{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        with self._lock:
            entries = self._read()
            entries[f"{service}\n{username}"] = password
            self._write(entries)

    def delete_password(self, service: str, username: str) -> None:
        with self._lock:
            entries = self._read()
            if entries.pop(f"{service}\n{username}", None) is None:
                raise keyring.errors.PasswordDeleteError("not found")
            self._write(entries)
