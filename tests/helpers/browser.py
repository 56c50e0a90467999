"""A real Chromium for end-to-end tests: a small wrapper over Selenium's Chrome WebDriver.

Debian's ``chromium`` and ``chromium-driver`` packages (``/usr/bin/chromium``, ``/usr/bin/chromedriver``), headless,
with a fresh profile per browser. Nothing is downloaded: the driver path is given explicitly, so Selenium Manager
never runs (and ``SE_OFFLINE=true`` keeps it offline if it ever did).

In a test::

    from tests.helpers.browser import browser_fixture  # noqa: F401  (registers the ``browser`` fixture)

    def test_something(browser: Browser) -> None:
        browser.open(url)
        browser.click("#pay")
        browser.wait_for_url("http://127.0.0.1:1234/callback")
        browser.assert_not_error_page()
        browser.screenshot()  # test-artifacts/<test name>.png

or, without the fixture, ``require_chromium()`` and then ``with Browser() as b: ...``.

Every wait is bounded; a wait that times out, and ``assert_not_error_page`` when it fails, save a screenshot to
``test-artifacts/`` and raise ``AssertionError`` naming the URL and the start of the page's text.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

CHROMIUM = os.environ.get("CREDITDESK_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CREDITDESK_CHROMEDRIVER", "/usr/bin/chromedriver")
REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
INSTALL_HINT = "Chromium is not installed: apt-get install chromium chromium-driver"

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--disable-default-apps",
    "--metrics-recording-only",
    "--password-store=basic",
    "--lang=en-US",
)

# What Chromium's own error page (net errors) looks like from inside.
# (compared with typographic apostrophes made straight)
_ERROR_PAGE_TEXTS = (
    "This site can't be reached",
    "This page isn't working",
    "Your connection was interrupted",
    "No internet",
)
_NET_ERROR = re.compile(r"\b(?:net::)?ERR_[A-Z0-9_]{3,}\b")
_ERROR_PAGE_PROBE = """
return {
  url: document.URL,
  neterror: !!(document.body && document.body.classList.contains('neterror')),
  frameError: !!document.getElementById('main-frame-error'),
  text: document.body ? document.body.innerText : '',
};
"""


def public_address_space(port: int) -> str:
    """A flag making Chromium treat the server on 127.0.0.1:``port`` as a public site (a backend on the internet),
    so that its pages fall under Local Network Access when they reach loopback."""
    return f"--ip-address-space-overrides=127.0.0.1:{port}=public"


def chromium_available() -> bool:
    """True when both the browser and its driver are installed and executable."""
    return all(os.path.isfile(path) and os.access(path, os.X_OK) for path in (CHROMIUM, CHROMEDRIVER))


def require_chromium() -> None:
    """Skip the test when Chromium or chromedriver is missing; under ``CI=true`` fail instead."""
    if chromium_available():
        return
    missing = ", ".join(path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.isfile(path))
    if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
        pytest.fail(f"{INSTALL_HINT} (missing: {missing}; CI=true, so this is a failure, not a skip)")
    pytest.skip(INSTALL_HINT)


def current_test_name() -> str:
    """The running test's name with its parameters, from ``PYTEST_CURRENT_TEST`` (``""`` outside a test)."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    return current.rsplit(" (", 1)[0].split("::")[-1] if current else ""


def artifact_path(name: str, suffix: str = ".png") -> Path:
    """``test-artifacts/<name><suffix>`` at the repository root (created), the name made file-safe."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "browser"
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{safe[:150]}{suffix}"


class Browser:
    """Headless Chromium through chromedriver. Use as a context manager, or ``start()`` and ``close()``."""

    def __init__(
        self, *, name: str | None = None, width: int = 1280, height: int = 900, page_load_timeout: float = 20,
        flags: tuple[str, ...] = (),
    ) -> None:
        #: used to name screenshots; defaults to the running test's name
        self.name = name
        self.flags = flags
        self.width = width
        self.height = height
        self.page_load_timeout = page_load_timeout
        self._driver: Any = None
        self._profile: str | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> Browser:
        if self._driver is not None:
            raise RuntimeError("this Browser is already started")
        if not chromium_available():
            raise RuntimeError(INSTALL_HINT)
        os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never go online
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self._profile = tempfile.mkdtemp(prefix="creditdesk-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*CHROMIUM_FLAGS, *self.flags):
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self._profile}")
        options.add_argument(f"--window-size={self.width},{self.height}")
        options.page_load_strategy = "normal"
        service = Service(CHROMEDRIVER, log_output=os.path.join(self._profile, "chromedriver.log"))
        try:
            self._driver = webdriver.Chrome(service=service, options=options)
        except Exception as exc:
            log = self._driver_log()
            self._remove_profile()
            raise RuntimeError(f"Chromium did not start: {exc}\n{log[-2000:]}") from exc
        self._driver.set_page_load_timeout(self.page_load_timeout)
        self._driver.set_script_timeout(10)
        self._driver.implicitly_wait(0)
        return self

    def close(self) -> None:
        """Quit the browser and remove its profile (idempotent)."""
        driver, self._driver = self._driver, None
        try:
            if driver is not None:
                driver.quit()
        finally:
            self._remove_profile()

    def __enter__(self) -> Browser:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def driver(self) -> Any:
        """The underlying ``selenium.webdriver.Chrome`` for anything this wrapper does not cover."""
        if self._driver is None:
            raise RuntimeError("the Browser is not started")
        return self._driver

    # -- the network's rules -----------------------------------------------------------------------------

    def grant_loopback_access(self) -> None:
        """Allow pages to reach loopback addresses, as a user does by answering Chromium's Local Network Access
        prompt with "Allow" (headless Chromium denies it otherwise)."""
        self.driver.execute_cdp_cmd("Browser.setPermission", {
            "permission": {"name": "loopback-network"}, "setting": "granted"})

    # -- navigation and reading --------------------------------------------------------------------------

    def open(self, url: str) -> None:
        """Load ``url`` and wait for it; a page that cannot be reached fails with a screenshot."""
        from selenium.common.exceptions import WebDriverException

        try:
            self.driver.get(url)
        except WebDriverException as exc:
            match = _NET_ERROR.search(str(exc.msg or exc))
            if match is None:
                raise
            self._fail(f"could not open {url}: {match.group(0)}", "open-failed")

    @property
    def url(self) -> str:
        """The address of the page shown (what the address bar would show)."""
        return str(self.driver.current_url)

    def text(self) -> str:
        """The visible text of the page (``document.body.innerText``)."""
        return str(self.driver.execute_script("return document.body ? document.body.innerText : ''") or "")

    def title(self) -> str:
        return str(self.driver.title)

    def back(self) -> None:
        """The Back button."""
        self.driver.back()

    def attribute(self, css: str, name: str) -> str | None:
        """An attribute of the first element matching ``css`` (None when there is no such element)."""
        from selenium.webdriver.common.by import By

        found = self.driver.find_elements(By.CSS_SELECTOR, css)
        return found[0].get_attribute(name) if found else None

    # -- acting and waiting ------------------------------------------------------------------------------

    def click(self, css: str, timeout: float = 10) -> None:
        """Click the first element matching ``css`` once it is visible and enabled."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            element = WebDriverWait(self.driver, timeout).until(ec.element_to_be_clickable((By.CSS_SELECTOR, css)))
        except TimeoutException:
            self._fail(f"no clickable element {css!r} within {timeout}s", "click-timeout")
        element.click()

    def wait_for_url(self, prefix: str, timeout: float = 20) -> str:
        """Wait until the browser is at an address starting with ``prefix``; returns that address."""
        self._wait(lambda: self.url.startswith(prefix), timeout, f"the browser never reached {prefix!r}")
        return self.url

    def wait_for_text(self, text: str, timeout: float = 10) -> str:
        """Wait until the page's visible text contains ``text``; returns the whole text."""
        self._wait(lambda: text in self.text(), timeout, f"the page never showed {text!r}")
        return self.text()

    def wait_until(self, condition: Callable[[], object], timeout: float = 10, message: str = "condition") -> None:
        """Wait until ``condition()`` is truthy (exceptions from it count as not yet)."""
        self._wait(condition, timeout, f"{message} not met")

    # -- checks and artifacts ----------------------------------------------------------------------------

    def error_page_reason(self) -> str | None:
        """Why the page shown is Chromium's own error page, or None when it is a real page."""
        current = self.url
        probe = self.driver.execute_script(_ERROR_PAGE_PROBE) or {}
        document_url = str(probe.get("url", ""))
        text = str(probe.get("text", ""))
        if current.startswith("chrome-error://") or document_url.startswith("chrome-error://"):
            return f"Chromium error page (document {document_url})"
        if probe.get("neterror") or probe.get("frameError"):
            return "Chromium network error page"
        plain = text.replace("\u2019", "'")
        for marker in _ERROR_PAGE_TEXTS:
            if marker in plain:
                return f"the page says {marker!r}"
        match = _NET_ERROR.search(text)
        if match:
            return f"the page shows {match.group(0)}"
        return None

    def assert_not_error_page(self) -> None:
        """Fail (with a screenshot) when Chromium shows its own error page instead of a site's page."""
        reason = self.error_page_reason()
        if reason is not None:
            self._fail(reason, "error-page")

    def screenshot(self, path: str | os.PathLike[str] | None = None, *, suffix: str = "") -> Path:
        """Save a PNG of the viewport; by default ``test-artifacts/<test name><suffix>.png``. Returns the path."""
        target = Path(path) if path is not None else artifact_path((self.name or current_test_name()) + suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not self.driver.save_screenshot(str(target)):
            raise AssertionError(f"Chromium could not save a screenshot to {target}")
        return target

    # -- internals ---------------------------------------------------------------------------------------

    def _wait(self, condition: Callable[[], object], timeout: float, message: str) -> None:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        def check(_driver: object) -> bool:
            try:
                return bool(condition())
            except Exception:
                return False

        try:
            WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(check)
        except TimeoutException:
            self._fail(f"{message} within {timeout}s", "timeout")

    def _fail(self, message: str, suffix: str) -> NoReturn:
        details = [message]
        try:
            details.append(f"at {self.url}")
            details.append(f"page text: {self.text()[:500]!r}")
            details.append(f"screenshot: {self.screenshot(suffix=f'-{suffix}')}")
        except Exception as exc:  # the browser itself is gone: say so, do not hide the first problem
            details.append(f"(browser state unavailable: {exc})")
        raise AssertionError("\n".join(details))

    def _driver_log(self) -> str:
        if self._profile is None:
            return ""
        log = Path(self._profile, "chromedriver.log")
        return log.read_text(errors="replace") if log.exists() else ""

    def _remove_profile(self) -> None:
        profile, self._profile = self._profile, None
        if profile is not None:
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(name="browser")
def browser_fixture(request: pytest.FixtureRequest) -> Iterator[Browser]:
    """A started headless Chromium for one test (skipped, or failed under CI=true, when not installed).

    Import ``browser_fixture`` into a test module or conftest to make the ``browser`` fixture available.
    """
    require_chromium()
    with Browser(name=request.node.name) as browser:
        yield browser
