"""``creditdesk --self-test``: whether this installation can run, one line a check, without a window.

Each check answers ``ok`` (with what it found), ``FAILED: why`` or ``skipped: why``; the command exits 1 when
one failed. The checks here need no Qt: the data folder, and the configured backend's health (the bundled
backend, started for the check in a folder of its own, when the build bundles one and no URL is given). The Qt
checks (starting offscreen, the platform plugins) are in :mod:`desktop.qt.platform_check`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from desktop.core.build_config import BuildConfig
from desktop.core.settings import AppPaths

OK = "ok"
FAILED = "FAILED"
SKIPPED = "skipped"
# Seconds the health check waits for an answer, and for the bundled backend to start (a cold start of a frozen
# bundle from a slow disk takes a few seconds).
HEALTH_TIMEOUT = 10.0
BUNDLED_START_TIMEOUT = 60.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    outcome: str  # OK, FAILED or SKIPPED
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome == FAILED

    def line(self) -> str:
        if self.outcome == OK:
            return f"{self.name}: ok ({self.detail})" if self.detail else f"{self.name}: ok"
        return f"{self.name}: {self.outcome}: {self.detail}"


def ok(name: str, detail: str = "") -> CheckResult:
    return CheckResult(name, OK, detail)


def failed(name: str, why: str) -> CheckResult:
    return CheckResult(name, FAILED, why)


def check_data_folder(paths: AppPaths) -> CheckResult:
    """The app's folders exist or can be made, and a file can be written, read back and removed in each."""
    name = "data folder"
    for folder in (paths.data_dir, paths.config_dir, paths.log_dir):
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, probe = tempfile.mkstemp(prefix=".self-test-", dir=folder)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write("creditdesk self-test\n")
                if Path(probe).read_text(encoding="utf-8") != "creditdesk self-test\n":
                    return failed(name, f"{folder}: a file written there reads back differently")
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(probe)
        except OSError as exc:
            return failed(name, f"{folder}: {exc.strerror or exc}")
    return ok(name, str(paths.data_dir))


def check_backend(backend_url: str | None, config: BuildConfig) -> CheckResult:
    """``GET /api/health`` of the backend the app would use: the given URL, else the bundled backend (started
    for the check, on a database of its own, and stopped), else skipped: the build names none."""
    name = "backend health"
    if backend_url is not None:
        return _health(name, backend_url)
    if not config.bundles_backend:
        return CheckResult(name, SKIPPED, "this build has no backend URL and bundles no backend; "
                                          "give one with --backend URL or CREDITDESK_BACKEND_URL")
    from desktop.core.bundled_backend import BundledBackend, BundledBackendError

    with tempfile.TemporaryDirectory(prefix="creditdesk-self-test-") as scratch:
        bundled = BundledBackend(Path(scratch), startup_timeout=BUNDLED_START_TIMEOUT)
        try:
            url = bundled.start()
        except BundledBackendError as exc:
            return failed(name, str(exc).replace("\n", " | "))
        try:
            result = _health(name, url)
        finally:
            bundled.stop()
    return CheckResult(result.name, result.outcome, f"bundled backend, {result.detail}")


def _health(name: str, url: str) -> CheckResult:
    from desktop.core.api import ApiClient, ApiClientError

    client = ApiClient(url, timeout=HEALTH_TIMEOUT, retries=0)
    try:
        health = client.health(timeout=HEALTH_TIMEOUT)
    except ApiClientError as exc:
        return failed(name, f"{url}: {exc}")
    finally:
        client.close()
    if health.status != "ok":
        return failed(name, f"{url} answers status {health.status!r}")
    return ok(name, f"{url}, version {health.version}, payments {health.payments}, {health.latency_ms:g} ms")


def run_checks(checks: Iterable[tuple[str, Callable[[], CheckResult]]], out: TextIO) -> int:
    """Run each check, printing its line as it ends (a check that raises has failed); 0 if none failed, else 1."""
    any_failed = False
    for name, check in checks:
        try:
            result = check()
        except Exception as exc:  # a check that cannot even run has failed, and says why
            result = failed(name, f"{type(exc).__name__}: {exc}")
        any_failed = any_failed or result.failed
        print(result.line(), file=out, flush=True)
    return 1 if any_failed else 0
