"""`make dist`: the standalone app and its Debian package, built once per run (and not again while the sources are
unchanged: packaging/build_app.py keeps the inputs' hash), then run as a user would run them."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import NoReturn

import pytest

from tests.helpers.api import Api
from tests.helpers.backend import BackendProcess
from tests.helpers.browser import Browser, browser_fixture  # noqa: F401  (the ``browser`` fixture)
from tests.helpers.dist import build

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "dist" / "creditdesk"
# The Qt modules the app uses, and the two QtCharts links; everything else of PySide6 stays out of the bundle.
USED_QT = {"QtCore", "QtGui", "QtWidgets", "QtNetwork", "QtCharts", "QtOpenGL", "QtOpenGLWidgets", "QtDBus"}
TEST_TOOLS = ("pytest", "_pytest", "pytestqt", "xdist", "hypothesis", "schemathesis", "selenium", "mypy", "ruff",
              "PyInstaller", "pip", "setuptools")

pytestmark = [pytest.mark.slow, pytest.mark.subprocess, pytest.mark.timeout(1200)]


def project_version() -> str:
    import tomllib

    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def missing_tool(message: str) -> NoReturn:
    """Skipped on a developer's machine without the tool; failed under CI=true, whose .ci/run installs it."""
    if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
        pytest.fail(f"{message} (CI=true, so this is a failure, not a skip)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def dist() -> Path:
    """`make dist`'s output folder: built here, or found up to date (two workers take turns at the build)."""
    for tool in ("dpkg-deb", "objdump", "ldd"):
        if shutil.which(tool) is None:
            missing_tool(f"make dist needs {tool} (apt-get install binutils; .ci/run does)")
    started = time.monotonic()
    result = build()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"make dist: waited {time.monotonic() - started:.0f} s")
    return ROOT / "dist"


def app_env(tmp_path: Path) -> dict[str, str]:
    """A user's environment: no Creditdesk or Stripe settings, no Python of ours, a display-less session."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CREDITDESK_", "STRIPE_", "PYTHON", "VIRTUAL_ENV", "QT_"))}
    env["CREDITDESK_HOME"] = str(tmp_path / "home")
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    env.pop("DISPLAY", None)
    return env


def self_test(executable: Path, tmp_path: Path, *args: str) -> list[str]:
    proc = subprocess.Popen([str(executable), "--self-test", *args], cwd=tmp_path, env=app_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the app runs (its checks follow): the process is the bundle's executable,
    comm = Path(f"/proc/{proc.pid}/comm").read_text().strip()  # named as the command is, not python
    rest, err = proc.communicate(timeout=180)
    out = first + rest
    assert proc.returncode == 0, out + err
    assert comm == "creditdesk"
    lines = out.splitlines()
    assert [line.split(": ")[0] for line in lines[1:]] == ["start offscreen", "qt platform plugins", "data folder",
                                                           "backend health"], out
    assert all(line.split(": ", 1)[1].startswith("ok") for line in lines[1:]), out
    return lines


def test_the_bundle_passes_its_self_test_against_a_backend_on_loopback(dist: Path, stub_backend: BackendProcess,
                                                                       tmp_path: Path) -> None:
    lines = self_test(dist / "creditdesk" / "creditdesk", tmp_path, "--backend", stub_backend.url)
    assert lines[0] == f"Creditdesk {project_version()} self-test (installed bundle): backend {stub_backend.url}"
    assert lines[4].startswith(f"backend health: ok ({stub_backend.url}, version ")


def test_the_demo_bundle_starts_its_own_backend_from_its_executable(dist: Path, tmp_path: Path) -> None:
    lines = self_test(dist / "creditdesk" / "creditdesk", tmp_path)
    assert lines[0].endswith("backend its bundled backend (stub payments)")
    assert lines[4].startswith("backend health: ok (bundled backend, http://127.0.0.1:")
    assert "payments stub" in lines[4]


def test_the_bundle_says_its_version_and_holds_no_test_tools_and_only_the_qt_it_uses(dist: Path) -> None:
    bundle = dist / "creditdesk"
    version = subprocess.run([str(bundle / "creditdesk"), "--version"], capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}, timeout=60)
    assert version.stdout == f"creditdesk {project_version()}\n", version.stderr
    assert (bundle / "creditdesk").read_bytes()[:4] == b"\x7fELF"  # the executable, not a script run by python
    modules = (dist / "creditdesk.modules.txt").read_text().split()
    assert "desktop.app" in modules and "backend.cli" in modules  # the demo build bundles the backend
    assert [m for m in modules if m.split(".")[0] in TEST_TOOLS] == []
    files = [str(path.relative_to(bundle)) for path in bundle.rglob("*")]
    assert [f for f in files if any(f"/{tool}" in f"/{f}".lower() for tool in ("pytest", "hypothesis", "selenium"))
            ] == []
    qt = {path.name.split(".")[0] for path in (bundle / "_internal" / "PySide6").glob("Qt*.so")}
    assert "QtCharts" in qt and qt <= USED_QT, qt - USED_QT
    assert not [f for f in files if "Qt6Quick" in f or "Qt6Qml" in f or "WebEngine" in f or "/qml/" in f]


def test_the_debian_package_holds_the_app_its_launcher_desktop_file_and_icons(dist: Path) -> None:
    (deb,) = dist.glob("creditdesk_*.deb")
    assert deb.name.startswith(f"creditdesk_{project_version()}_")
    info = subprocess.run(["dpkg-deb", "-I", str(deb)], capture_output=True, text=True, check=True).stdout
    fields = dict(line.strip().split(": ", 1) for line in info.splitlines() if line.startswith(" ") and ": " in line)
    assert fields["Package"] == "creditdesk" and fields["Version"] == project_version()
    depends = set(fields["Depends"].split(", "))
    assert {"libxcb-cursor0", "libxkbcommon-x11-0", "libegl1", "libfontconfig1", "libc6"} <= depends, depends
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    entries = {line.split(None, 5)[5] for line in listing.splitlines()}
    assert "./opt/creditdesk/creditdesk" in entries
    assert "./usr/bin/creditdesk -> /opt/creditdesk/creditdesk" in entries
    assert "./usr/share/applications/creditdesk.desktop" in entries
    for size in (16, 22, 24, 32, 48, 64, 128, 256, 512):
        assert f"./usr/share/icons/hicolor/{size}x{size}/apps/creditdesk.png" in entries
    assert all(" root/root " in line for line in listing.splitlines())


def test_the_installed_package_passes_its_self_test(dist: Path, stub_backend: BackendProcess, tmp_path: Path) -> None:
    """Installed into a throwaway root (dpkg -x): `apt install` would install it on this machine for real."""
    (deb,) = dist.glob("creditdesk_*.deb")
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    desktop_file = (root / "usr" / "share" / "applications" / "creditdesk.desktop").read_text()
    assert "\nExec=creditdesk\n" in desktop_file and "\nIcon=creditdesk\n" in desktop_file
    assert os.readlink(root / "usr" / "bin" / "creditdesk") == "/opt/creditdesk/creditdesk"
    lines = self_test(root / "opt" / "creditdesk" / "creditdesk", tmp_path, "--backend", stub_backend.url)
    assert lines[4].startswith(f"backend health: ok ({stub_backend.url}, ")


class VirtualDisplay:
    """Xvfb on a free display: the built app's window, driven from outside its process with xdotool as a user's
    keyboard would (Qt's offscreen platform takes no input from another process)."""

    def __init__(self, log: Path) -> None:
        for tool in ("Xvfb", "xdotool"):
            if shutil.which(tool) is None:
                missing_tool(f"{tool} is not installed (apt-get install xvfb xdotool; .ci/run does)")
        read, write = os.pipe()
        with log.open("wb") as errors:  # Xvfb says on which display it runs once it is ready
            self.proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x1024x24",
                                          "-nolisten", "tcp"], pass_fds=(write,), stderr=errors)
        os.close(write)
        # Read up to the end of the line, and keep our end open while Xvfb runs: it fails on a write to a closed pipe.
        self._displayfd = read
        number = b""
        while not number.endswith(b"\n"):
            chunk = os.read(read, 100)
            if not chunk:
                break
            number += chunk
        assert number.strip().isdigit(), f"Xvfb did not start: {log.read_text()}"
        self.name = f":{number.decode().strip()}"

    def xdotool(self, *args: str, timeout: float = 60) -> str:
        try:
            return subprocess.run(["xdotool", *args], env={"DISPLAY": self.name}, capture_output=True, text=True,
                                  timeout=timeout, check=True).stdout
        except subprocess.TimeoutExpired:
            raise AssertionError(f"xdotool {' '.join(args)} did not end within {timeout:g} s") from None
        except subprocess.CalledProcessError as exc:
            raise AssertionError(f"xdotool {' '.join(args)} failed: {exc.stderr}") from None

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        os.close(self._displayfd)


def wait_for_line(path: Path, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [line for line in (path.read_text() if path.exists() else "").splitlines() if text in line]
        if found:
            return found[-1]
        time.sleep(0.2)
    raise AssertionError(f"{path} never said {text!r}:\n{path.read_text() if path.exists() else '(no file)'}")


def test_the_built_app_does_a_whole_purchase(dist: Path, stub_backend: BackendProcess, tmp_path: Path,
                                             browser: Browser) -> None:
    """The bundle against a stub backend on loopback: sign up, Ctrl+1, pay on the stub page in headless Chromium,
    and the app learns of the payment from the page's hand-off."""
    opened = tmp_path / "opened.txt"
    launcher = tmp_path / "bin" / "xdg-open"  # the desktop's "open this URL": hands it to the test's Chromium
    launcher.parent.mkdir()
    launcher.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> {opened}\n')
    launcher.chmod(0o755)
    display = VirtualDisplay(tmp_path / "xvfb.log")
    env = app_env(tmp_path)
    env.update({"DISPLAY": display.name, "QT_QPA_PLATFORM": "xcb", "PATH": f"{launcher.parent}:{env['PATH']}",
                "LANG": "C.UTF-8"})
    log = tmp_path / "home" / "log" / "creditdesk.log"
    app = subprocess.Popen([str(dist / "creditdesk" / "creditdesk"), "--backend", stub_backend.url], cwd=tmp_path,
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # A cold start of the bundle on a loaded machine takes seconds.
        window = display.xdotool("search", "--sync", "--onlyvisible", "--name", "Creditdesk", timeout=120).split()[0]
        wait_for_line(log, f"backend at {stub_backend.url}", timeout=60)
        time.sleep(2)  # the sign-in page follows the backend's first answer (the app logs no line for it)
        display.xdotool("windowfocus", "--sync", window)
        email = f"bundle-{os.getpid()}-{time.monotonic_ns()}@example.com"
        display.xdotool("type", "--delay", "10", email)
        display.xdotool("key", "Return")  # on to the password
        display.xdotool("type", "--delay", "10", "correct horse battery")
        display.xdotool("key", "alt+a")  # Create account
        wait_for_line(log, "signed in as ")
        for _ in range(6):  # Ctrl+1 buys the first pack once the packs have loaded
            display.xdotool("key", "ctrl+1")
            with contextlib.suppress(AssertionError):
                started = wait_for_line(log, "purchase started: pack=starter", timeout=5)
                break
        else:
            raise AssertionError(f"Ctrl+1 started no purchase:\n{log.read_text()}")
        session = started.split("session=")[1].split()[0]
        deadline = time.monotonic() + 20
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        url = opened.read_text().split()[0]
        assert session in url
        browser.open(url)
        browser.wait_for_text("Starter")
        browser.click("#pay")
        browser.wait_for_text("Payment received", timeout=20)
        browser.wait_until(lambda: browser.attribute("#handoff", "data-state") == "told", timeout=10,
                           message="the hand-off to the app")
        wait_for_line(log, f"purchase ended: session={session} state=paid")
        assert "checkout hand-off from the browser: status=paid" in log.read_text()
        api = Api(stub_backend.url)
        response = api.post("/api/auth/login", json={"email": email, "password": "correct horse battery"})
        api.token = response.json()["token"]
        assert api.balance() == 100
    finally:
        app.terminate()
        app.wait(20)
        display.close()


class UpdateServer:
    """``python -m http.server`` on 127.0.0.1 serving the update repository, as the update server would."""

    def __init__(self, folder: Path) -> None:
        import sys

        self.proc = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                                      "--directory", str(folder)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        assert " port " in line, line
        self.url = f"http://127.0.0.1:{int(line.split(' port ')[1].split()[0])}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def test_the_installed_bundle_updates_itself_refuses_what_does_not_verify_and_goes_back_from_a_broken_version(
        dist: Path, tmp_path: Path) -> None:
    """v1 updates to v2 (a visible change: its name and version); a tampered v3 is refused and v2 stays; an update
    killed half-way leaves v2 working; v3, broken (no Qt platform plugins), fails its self-test at its first start
    and v2 is back by itself. v2 and v3 are made from the one bundle this run built, with another version and
    name baked in (what `make dist` with that build.toml would bake; the updater ships whatever the folder holds).
    The user's purchases file, sign-in index and settings are the same bytes at the end."""
    import signal

    from desktop.core.updates import UpdateLayout, UpdateState
    from tests.helpers.update_repo import UpdateRepo, restamp

    started = time.monotonic()
    v1 = project_version()
    v2, v3 = f"{v1}.1", f"{v1}.2"
    release = UpdateRepo.create(tmp_path / "release")
    server = UpdateServer(release.repo)
    env = app_env(tmp_path)
    home = Path(env["CREDITDESK_HOME"])
    user_files = {home / "data" / "pending-purchases.json": '{"version": 2, "purchases": []}\n',
                  home / "config" / "settings.json": '{"low_balance_warning": 37}\n',
                  home / "config" / "keyring-entries.json": '["account:buyer@example.com"]\n'}
    for path, text in user_files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    layout = UpdateLayout.under(home / "data")

    def copy_of_the_build(name: str, version: str, **changes: object) -> Path:
        folder = tmp_path / name
        subprocess.run(["cp", "-al", str(dist / "creditdesk"), str(folder)], check=True)  # hard links: instant
        restamp(folder, version, server.url, release.root_json, **changes)
        return folder

    def creditdesk(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(installed / "creditdesk"), *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=timeout)

    try:
        installed = copy_of_the_build("installed", v1)  # as /opt/creditdesk: never written to
        release.release(copy_of_the_build("build-v2", v2, app_name="Creditdesk Next"), v2, "Faster start.")
        made = time.monotonic()

        update = creditdesk("--update")
        assert update.returncode == 0, update.stdout + update.stderr
        assert f"Version {v2} is available (you have {v1}). What is new:\nFaster start.\n" in update.stdout
        assert creditdesk("--version").stdout == f"creditdesk {v2}\n"  # v2's first start: its self-test passed
        assert UpdateState.load(layout.state_file).unproven is None
        seen = creditdesk("--self-test", "--backend", "http://127.0.0.1:9").stdout.splitlines()[0]
        assert seen.startswith(f"Creditdesk Next {v2} self-test (installed bundle)"), seen
        updated = time.monotonic()

        # v3: a broken build (its Qt platform plugins missing), published signed; first served tampered.
        broken = copy_of_the_build("build-v3", v3)
        shutil.rmtree(broken / "_internal" / "PySide6" / "Qt" / "plugins" / "platforms")
        archive = release.release(broken, v3, "Broken on purpose.")
        good = archive.read_bytes()
        archive.write_bytes(good[:-4096] + bytes(4096))
        refused = creditdesk("--update")
        assert refused.returncode == 1
        assert "does not match its signed size and hash, so it was refused" in refused.stderr, refused.stderr
        assert creditdesk("--version").stdout == f"creditdesk {v2}\n"
        archive.write_bytes(good)

        # Killed while unpacking: the state is written last, so v2 still runs.
        (layout.downloads_dir / archive.name).unlink(missing_ok=True)
        proc = subprocess.Popen([str(installed / "creditdesk"), "--update"], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not (layout.staging_dir / v3 / "_internal").exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "the update never began unpacking"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL, "the update ended before it could be stopped half-way"
        assert UpdateState.load(layout.state_file).current == v2
        assert creditdesk("--version").stdout == f"creditdesk {v2}\n"

        # Installed whole this time: its first start fails its self-test, and v2 is back by itself.
        assert creditdesk("--update").returncode == 0
        assert UpdateState.load(layout.state_file).unproven == v3
        assert creditdesk("--version").stdout == f"creditdesk {v2}\n"
        state = UpdateState.load(layout.state_file)
        assert (state.current, state.held_back) == (v2, (v3,))
        assert state.notice is not None and f"Version {v3} did not pass its self-test" in state.notice
        assert creditdesk("--update").stdout == f"Version {v3} was set aside (reverted from); you have {v2}.\n"
        assert all(path.read_text() == text for path, text in user_files.items())
        assert sorted(p.name for p in layout.versions_dir.iterdir()) == [v2, v3]
    finally:
        server.close()
    print(f"updates end to end: {time.monotonic() - started:.0f} s (keys and v2's release {made - started:.0f} s, "
          f"v1 to v2 {updated - made:.0f} s)")
