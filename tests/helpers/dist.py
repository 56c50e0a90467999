"""`make dist` for tests/test_dist.py: started in the background as soon as the run knows it has dist tests, so
that the build (a few minutes of one core) overlaps the rest of the suite instead of ending it.

Every `make dist` of a test run goes through ``flock`` on one file: a worker's fixture waits for the background
build (or another worker's) and then finds the bundle up to date (packaging/build_app.py keeps the inputs' hash).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "build" / "make-dist.lock"
LOG = ROOT / "build" / "make-dist.log"
TESTS = "tests/test_dist.py"

_background: subprocess.Popen[bytes] | None = None


def command() -> list[str]:
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    return ["flock", str(LOCK), "make", "--no-print-directory", "dist"]


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}


def start_in_background(session: pytest.Session) -> None:
    """From the run's first worker (or a run without workers), when a dist test is among those selected."""
    global _background
    if os.environ.get("PYTEST_XDIST_WORKER", "gw0") != "gw0":
        return
    if not any(item.nodeid.startswith(TESTS) for item in session.items):
        return
    LOG.parent.mkdir(parents=True, exist_ok=True)  # a fresh clone has no build/ yet
    log = LOG.open("wb")
    _background = subprocess.Popen(command(), cwd=ROOT, env=environment(), stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()


def stop_background() -> None:
    """At the end of the run: a build nobody waited for (its tests were deselected or failed early) is stopped."""
    if _background is not None and _background.poll() is None:
        _background.terminate()
        _background.wait(30)


def build() -> subprocess.CompletedProcess[str]:
    """`make dist`, after whichever build of this run holds the lock."""
    return subprocess.run(command(), cwd=ROOT, env=environment(), capture_output=True, text=True)
