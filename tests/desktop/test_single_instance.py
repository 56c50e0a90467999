"""One app per data folder: the real `creditdesk` command, launched twice, in the default (bundled) mode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.mark.subprocess
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


@pytest.mark.subprocess
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



@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[object]:
    """Starts a process that only sleeps, under the name given; its pid."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> int:
        program = tmp_path / name
        program.symlink_to(sys.executable)
        started.append(subprocess.Popen([str(program), "-c", "import time; time.sleep(60)"]))
        return started[-1].pid

    yield start
    for process in started:
        process.kill()
        process.wait()


@pytest.mark.parametrize(("name", "running"), [("python3", False), ("creditdesk", True)])
@pytest.mark.subprocess
def test_a_lock_naming_a_live_process_is_honoured_only_when_it_is_the_app(
    tmp_path: Path, sleeper: Any, name: str, running: bool, qapp: object,
) -> None:
    """A stale lock's process id, taken over by some other Python program, does not keep the app from starting;
    one naming a running Creditdesk still does."""
    from PySide6.QtCore import QSysInfo

    from desktop.qt.single_instance import SingleInstance

    pid = sleeper(name)
    lock = tmp_path / "creditdesk.lock"
    # As the app writes it: Qt's own check passes (the program's name is the one the process runs).
    program = Path(os.path.realpath(sys.executable)).name
    lock.write_text(f"{pid}\n{program}\n{QSysInfo.machineHostName()}\n")
    instance = SingleInstance(lock)
    assert instance.acquire() is not running
    assert instance.holder == (pid if running else None)
    instance.release()


@pytest.mark.parametrize(("argv", "the_app"), [
    (["/home/ada/.venv/bin/python3", "/home/ada/.venv/bin/creditdesk"], True),
    (["/opt/Creditdesk/Creditdesk"], True),
    (["python3", "-m", "desktop"], True),
    (["python3", "-mdesktop", "--backend", "http://127.0.0.1:8787"], True),
    (["/usr/bin/python3", "/usr/bin/xdg-desktop-portal-helper"], False),
    (["python3", "/home/ada/Desktop/script.py"], False),
    (["python3", "-m", "backend", "serve"], False),
    (["/home/ada/.venv/bin/python3", "/home/ada/.venv/bin/creditdesk-backend", "serve"], False),
    (["/sbin/init"], False),
    ([""], False),
])
def test_which_command_lines_run_the_app(argv: list[str], the_app: bool) -> None:
    from desktop.qt.single_instance import runs_the_app

    assert runs_the_app(argv) is the_app
