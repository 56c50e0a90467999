"""One app per data folder: the real `creditdesk` command, launched twice, in the default (bundled) mode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from desktop.core.bundled_backend import read_state, running_url
from desktop.core.settings import AppPaths

pytestmark = pytest.mark.timeout(120)


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDITDESK_", "STRIPE_"))}
    env.update({"CREDITDESK_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"})
    return env


def launch(home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "desktop"], env=environment(home), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_until_up(paths: AppPaths, app: subprocess.Popen[str], timeout: float = 60) -> str:
    """Until the app's bundled backend answers; returns its URL."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert app.poll() is None, f"the app exited: {app.communicate()}"
        url = running_url(paths.data_dir)
        if url is not None:
            try:
                if requests.get(f"{url}/api/health", timeout=2).ok:
                    return url
            except requests.RequestException:
                pass
        time.sleep(0.2)
    raise AssertionError("the app's bundled backend never answered")


def wait_for(condition: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.fixture
def apps() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for app in started:
        if app.poll() is None:
            app.kill()
        app.communicate()


def test_a_second_launch_brings_the_first_window_to_the_front(tmp_path: Path,
                                                              apps: list[subprocess.Popen[str]]) -> None:
    paths = AppPaths.under(tmp_path)
    first = launch(tmp_path)
    apps.append(first)
    url = wait_until_up(paths, first)
    backend_pid = read_state(paths.bundled_backend_file)["pid"]

    second = subprocess.run([sys.executable, "-m", "desktop"], env=environment(tmp_path), capture_output=True,
                            text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert "already running; its window was brought to the front" in second.stderr
    wait_for(lambda: "asked this window to come to the front" in paths.log_file.read_text(encoding="utf-8"))
    assert read_state(paths.bundled_backend_file)["pid"] == backend_pid  # no second backend on the database
    assert running_url(paths.data_dir) == url

    first.send_signal(signal.SIGTERM)  # quits properly: the window closes and the backend stops
    assert first.wait(30) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/api/health", timeout=2)


def test_a_crashed_instance_does_not_block_the_next_start(tmp_path: Path,
                                                          apps: list[subprocess.Popen[str]]) -> None:
    paths = AppPaths.under(tmp_path)
    crashed = launch(tmp_path)
    apps.append(crashed)
    wait_until_up(paths, crashed)
    old_backend = read_state(paths.bundled_backend_file)["pid"]
    crashed.kill()  # no clean-up at all: the lock file stays behind
    crashed.wait()
    assert paths.lock_file.exists()
    wait_for(lambda: running_url(paths.data_dir) is None)  # its backend saw it die and stopped
    assert read_state(paths.bundled_backend_file)["pid"] == old_backend  # (the file was left as it was)

    again = launch(tmp_path)
    apps.append(again)
    wait_until_up(paths, again)
    assert again.poll() is None
    again.send_signal(signal.SIGTERM)
    assert again.wait(30) == 0


# A lock file that names no running Creditdesk of this machine never stops the app from starting.
BAD_LOCKS = {
    "empty": "",
    "garbage": "\x00\xff not a lock file",
    "process 1 (init)": "1\ncreditdesk\n{host}\n",
    "another host's": "{pid}\ncreditdesk\nsome-other-machine\n",
    "a process that is gone": "999999\ncreditdesk\n{host}\n",
}


@pytest.mark.parametrize("kind", BAD_LOCKS)
def test_a_lock_that_names_no_running_app_is_taken_over(tmp_path: Path, kind: str, qapp: object) -> None:
    from PySide6.QtCore import QSysInfo

    from desktop.qt.single_instance import SingleInstance

    lock = tmp_path / "creditdesk.lock"
    lock.write_text(BAD_LOCKS[kind].format(host=QSysInfo.machineHostName(), pid=os.getpid()), errors="surrogateescape")
    instance = SingleInstance(lock)
    assert instance.acquire(), kind
    second = SingleInstance(lock)  # while it runs, it is the one: a second instance is refused
    assert not second.acquire() and second.holder == os.getpid()
    instance.release()

