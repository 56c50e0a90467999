"""Signed, reversible updates of the installed app (TUF metadata through tufup), and which version runs.

The installed bundle (``/opt/creditdesk`` from the .deb, root-owned) is never written to. Updates live in the
user's data folder::

    <data>/updates/state.json           which version runs (current), which Revert goes back to (previous), one
                                        not yet past its self-test (unproven), versions set aside (held back)
    <data>/updates/versions/<version>/  an unpacked bundle, as the release's archive holds it
    <data>/updates/metadata/            the TUF metadata trusted so far (seeded from the bundle's root.json): what
                                        makes an older (rollback) or expired (freeze) answer fail to verify
    <data>/updates/downloads/           the verified archives (tufup's target folder)
    <data>/updates/staging/             where an archive is unpacked before it is moved into versions/

The state file is the commit point: it is written (atomically) only once a version is wholly in ``versions/``,
so an update stopped at any moment leaves the state naming versions that are whole. The installed bundle's entry
(:func:`launch_target`, called by packaging/creditdesk_main.py) runs the current version; a version's first
start runs its ``--self-test`` first and goes back to the previous version when that fails.

Purchases in flight, the sign-in (keyring and its index) and the settings are in the user's folders
(:class:`desktop.core.settings.AppPaths`), shared by every version: an update or a revert moves none of them.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from desktop.core._files import atomic_write_text

log = logging.getLogger("desktop.updates")

APP_NAME = "creditdesk"  # the archives' name in the update repository: creditdesk-<version>.tar.gz
TRUSTED_ROOT_FILE = "update-root.json"  # the bundle's trusted root metadata, beside build-config.json
# Set by the installed bundle's entry for the version it starts: the installed bundle's version (that process
# runs as itself), and the installed bundle's executable (to start again after a revert).
LAUNCHED_ENV = "CREDITDESK_LAUNCHED_FROM"
LAUNCHER_ENV = "CREDITDESK_LAUNCHER"
FIRST_START_TIMEOUT = 180.0  # seconds a new version's self-test may take at its first start (a cold disk)
CHECK_EVERY = 24 * 3600  # the app checks at start, then daily
# Self-test checks whose failure is not the new version's fault (the network may be down at its first start).
NOT_THE_VERSIONS_FAULT = ("backend health",)


class UpdateError(Exception):
    """An update could not be checked or installed; the message is a sentence for the user. Nothing changed."""


class UpdateRefused(UpdateError):
    """What the update server sent does not verify (signature, hash, rollback, expiry): refused."""


class UpdateUnavailable(UpdateError):
    """The update server could not be reached or read (try again later)."""


def trusted_root_path() -> Path:
    """The root metadata this bundle trusts (make dist copies build.toml's [updates] root here)."""
    return Path(__file__).with_name(TRUSTED_ROOT_FILE)


def executable_name() -> str:
    return APP_NAME + (".exe" if sys.platform == "win32" else "")


@dataclass(frozen=True)
class UpdateLayout:
    root: Path

    @classmethod
    def under(cls, data_dir: Path) -> UpdateLayout:
        return cls(Path(data_dir) / "updates")

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    @property
    def metadata_dir(self) -> Path:
        return self.root / "metadata"

    @property
    def downloads_dir(self) -> Path:
        return self.root / "downloads"

    @property
    def staging_dir(self) -> Path:
        return self.root / "staging"

    def executable(self, version: str) -> Path:
        # On macOS the archive holds the .app's Contents (see packaging/build_app.py): MacOS/creditdesk inside.
        folder = self.versions_dir / version
        if sys.platform == "darwin":
            return folder / "MacOS" / APP_NAME
        return folder / executable_name()


@dataclass(frozen=True)
class UpdateState:
    current: str | None = None  # the version the launcher runs; None: the installed bundle
    previous: str | None = None  # the one Revert goes back to; None: the installed bundle
    unproven: str | None = None  # installed, its self-test at first start not yet passed
    held_back: tuple[str, ...] = ()  # versions reverted from or failed: not offered again
    notice: str | None = None  # a sentence for the app to say at its next start (then cleared)

    def to_json(self) -> str:
        data = asdict(self)
        data["held_back"] = list(self.held_back)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def load(cls, path: Path) -> UpdateState:
        """The state on disk; the default (the installed bundle runs) when there is none or it is unreadable."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.warning("update state %s unreadable (%s): running the installed version", path, exc)
            return cls()
        if not isinstance(data, dict):
            return cls()

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        held = data.get("held_back")
        return cls(current=text("current"), previous=text("previous"), unproven=text("unproven"),
                   held_back=tuple(v for v in held if isinstance(v, str)) if isinstance(held, list) else (),
                   notice=text("notice"))

    def save(self, path: Path) -> None:
        atomic_write_text(path, self.to_json())


def parse_version(text: str | None) -> Version | None:
    if not text:
        return None
    try:
        return Version(text)
    except InvalidVersion:
        return None


def newer(candidate: str | None, than: str | None) -> bool:
    a, b = parse_version(candidate), parse_version(than)
    return a is not None and (b is None or a > b)


# --- which version runs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchPlan:
    """What the installed bundle's entry does: run itself (executable None) or exec ``executable``."""

    executable: Path | None
    version: str
    state: UpdateState  # the state to save first (a failed first start reverted), or the one read


def runnable(layout: UpdateLayout, version: str | None, installed: str) -> bool:
    """Whether ``version`` is one the launcher runs from versions/: newer than the installed bundle, and whole."""
    return (version is not None and newer(version, installed) and layout.executable(version).is_file())


def first_start_passed(output: str, returncode: int | None) -> bool:
    """A new version's ``--self-test`` at its first start: passed unless it crashed, timed out, or a check that is
    its own failed (a backend out of reach is not the version's fault)."""
    if returncode is None:
        return False
    lines = [line for line in output.splitlines() if ": " in line]
    checks = lines[1:] if lines else []
    if not checks:
        return False
    own_failures = [line for line in checks if ": FAILED" in line
                    and line.split(": ", 1)[0] not in NOT_THE_VERSIONS_FAULT]
    return returncode in (0, 1) and not own_failures


def run_self_test(executable: Path, environ: Mapping[str, str], installed: str,
                  timeout: float = FIRST_START_TIMEOUT) -> tuple[str, int | None]:
    import subprocess  # (here: the app's window is built without it, see tests/desktop/qt/test_startup.py)

    env = child_environment(environ, installed)
    try:
        result = subprocess.run([str(executable), "--self-test"], capture_output=True, text=True,  # noqa: S603
                                env=env, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode(errors="replace")
        return out + "\n(timed out)", None
    except OSError as exc:
        return f"cannot start: {exc}", None
    return result.stdout + result.stderr, result.returncode


def plan_launch(layout: UpdateLayout, installed: str,
                self_test: Callable[[Path], tuple[str, int | None]]) -> LaunchPlan:
    """Which version to run. A version not yet proven runs its self-test first; when it fails, the state goes back
    to the previous version (which is what runs) and keeps a sentence saying so for the app."""
    state = UpdateState.load(layout.state_file)
    seen: set[str] = set()
    while runnable(layout, state.current, installed) and state.current not in seen:
        current = state.current
        assert current is not None
        seen.add(current)
        if state.unproven != current:
            return LaunchPlan(layout.executable(current), current, state)
        output, code = self_test(layout.executable(current))
        if first_start_passed(output, code):
            log.info("version %s passed its self-test at first start", current)
            state = replace(state, unproven=None)
            state.save(layout.state_file)
            return LaunchPlan(layout.executable(current), current, state)
        back = state.previous if state.previous != current else None
        log.error("version %s failed its self-test at first start; going back to %s: %s", current,
                  back or installed, output.strip().replace("\n", " | ")[-2000:])
        state = UpdateState(current=back, previous=None, unproven=None,
                            held_back=_with(state.held_back, current),
                            notice=f"Version {current} did not pass its self-test at its first start, so "
                                   f"version {back or installed} was restored. Nothing of yours was changed.")
        state.save(layout.state_file)
    return LaunchPlan(None, installed, state)


def launch_target(data_dir: Path, installed: str, environ: Mapping[str, str]) -> LaunchPlan:
    """For the installed bundle's entry: the plan, unless this process is already a launched version."""
    if environ.get(LAUNCHED_ENV):
        return LaunchPlan(None, installed, UpdateState())
    layout = UpdateLayout.under(data_dir)
    if not layout.state_file.exists():
        return LaunchPlan(None, installed, UpdateState())
    return plan_launch(layout, installed, lambda exe: run_self_test(exe, environ, installed))


def _with(versions: tuple[str, ...], version: str) -> tuple[str, ...]:
    return versions if version in versions else (*versions, version)


# --- revert ------------------------------------------------------------------------------------------------------


def revert_target(state: UpdateState, running: str, installed_base: str | None) -> str | None:
    """The version Help → Revert to previous version would go back to; None when there is none."""
    if state.current is None or state.current != running or running == installed_base:
        return None  # the installed bundle runs, or the state changed under this process (another update)
    return state.previous or installed_base


def why_no_revert(state: UpdateState, running: str, installed_base: str | None) -> str:
    """Why Help → Revert to previous version is off (where :func:`revert_target` is None), in the user's words."""
    if state.current is not None and state.current != running:
        return (f"Version {state.current} was just installed and runs from the next start; going back is possible "
                "once it runs.")
    return ("No previous version is kept: this is the version that was installed, and no update has replaced it. "
            "After an update, the version before it is kept so that you can go back to it.")


def revert(layout: UpdateLayout, running: str, installed_base: str | None) -> str:
    """Make the previous version the current one (from the next start); the running version is held back so that
    it is not offered again. Returns the version that will run. UpdateError when there is none to go back to."""
    state = UpdateState.load(layout.state_file)
    back = revert_target(state, running, installed_base)
    if back is None:
        raise UpdateError("There is no previous version to go back to.")
    new_state = UpdateState(current=back if back != installed_base else None, previous=None, unproven=None,
                            held_back=_with(state.held_back, running),
                            notice=f"You went back to version {back} from version {running}.")
    new_state.save(layout.state_file)
    log.info("revert: from %s to %s", running, back)
    return back


def take_notice(layout: UpdateLayout) -> str | None:
    """The sentence kept for this start (a failed first start, a revert), cleared once read."""
    state = UpdateState.load(layout.state_file)
    if state.notice is None:
        return None
    replace(state, notice=None).save(layout.state_file)
    return state.notice


# --- whether to install ------------------------------------------------------------------------------------------


class Step(Enum):
    NOTHING = "nothing"  # no newer version, or the check failed quietly (unreachable): try again later
    REFUSE = "refuse"  # what the server sent does not verify: say so, install nothing
    ASK = "ask"  # say what is new and ask
    WAIT = "wait"  # the user agreed, but a purchase is in flight: install when it has ended
    INSTALL = "install"  # the user agreed and no purchase is in flight
    LATER = "later"  # the user declined: not asked again this session (asked again at the next start)


@dataclass(frozen=True)
class Offer:
    version: str
    notes: str = ""
    size: int = 0


@dataclass(frozen=True)
class CheckOutcome:
    offer: Offer | None = None
    refused: str | None = None  # why what the server sent was refused
    unavailable: str | None = None  # why the server could not be read


def decide(outcome: CheckOutcome, running: str, held_back: tuple[str, ...], *, user_agrees: bool | None,
           purchase_in_flight: bool) -> Step:
    """The updater's decision, from a check's outcome and the user's answer (None: not asked yet)."""
    if outcome.refused is not None:
        return Step.REFUSE
    offer = outcome.offer
    if offer is None or not newer(offer.version, running) or offer.version in held_back:
        return Step.NOTHING
    if user_agrees is None:
        return Step.ASK
    if not user_agrees:
        return Step.LATER
    return Step.WAIT if purchase_in_flight else Step.INSTALL


def purchases_in_flight(records_file: Path, now: datetime.datetime | None = None) -> bool:
    """For ``creditdesk --update`` (no window, so no purchase it follows): an unfinished purchase in the pending
    purchases file started within the last day (a checkout session lives 24 hours)."""
    from desktop.core.purchase_records import PurchaseRecords

    now = now or datetime.datetime.now(datetime.UTC)
    for record in PurchaseRecords(records_file).all():
        if record.finished:
            continue
        try:
            started = datetime.datetime.fromisoformat(record.started_at.replace("Z", "+00:00"))
        except ValueError:
            return True
        if started.tzinfo is None:
            started = started.replace(tzinfo=datetime.UTC)
        if now - started < datetime.timedelta(days=1):
            return True
    return False


# --- the TUF client ----------------------------------------------------------------------------------------------


def _tufup_client_class() -> type[Any]:
    """tufup's Client. tufup's package imports its repository tools, which import setuptools (only to read an app
    maker's version attribute at release time); the installed app carries no setuptools, so an empty module stands
    in for that one import when setuptools is absent."""
    import importlib.util
    import types

    if "setuptools" not in sys.modules and importlib.util.find_spec("setuptools") is None:
        for name in ("setuptools", "setuptools.config", "setuptools.config.expand"):
            sys.modules.setdefault(name, types.ModuleType(name))
    from tufup.client import Client

    class _Client(Client):  # type: ignore[misc]
        """refresh() once, by us, so that what fails to verify reaches us (tufup's check logs and hides some)."""

        _refreshed = False

        def refresh(self) -> None:
            if not self._refreshed:
                super().refresh()
                self._refreshed = True

    return _Client


def describe_tuf_error(error: BaseException) -> UpdateError:
    """A sentence for the user from what python-tuf raised."""
    from tuf.api import exceptions as tuf_errors

    nothing = " Nothing was installed; the version you have is unchanged."
    if isinstance(error, tuf_errors.UnsignedMetadataError):
        return UpdateRefused("The update server's release information is not signed by this app's release keys, "
                             "so it was refused." + nothing)
    if isinstance(error, tuf_errors.LengthOrHashMismatchError):
        return UpdateRefused("The downloaded update does not match its signed size and hash, so it was refused."
                             + nothing)
    if isinstance(error, tuf_errors.BadVersionNumberError):
        return UpdateRefused("The update server offered older release information than this app has already "
                             "seen (a rollback), so it was refused." + nothing)
    if isinstance(error, tuf_errors.ExpiredMetadataError):
        return UpdateRefused("The update server's release information has expired (it may be stale or held back), "
                             "so it was refused." + nothing)
    if isinstance(error, tuf_errors.RepositoryError):
        return UpdateRefused(f"The update server's release information does not verify ({error}), so it was "
                             "refused." + nothing)
    if isinstance(error, tuf_errors.DownloadError | OSError):
        return UpdateUnavailable("The update server could not be reached; the app will try again later.")
    import requests

    if isinstance(error, requests.RequestException):
        return UpdateUnavailable("The update server could not be reached; the app will try again later.")
    return UpdateError(f"The update could not be checked ({type(error).__name__}).")


@dataclass
class Updater:
    """Checks the update server and installs a verified release into the user's versions folder."""

    layout: UpdateLayout
    url: str  # the update repository: <url>/metadata/ and <url>/targets/
    running: str  # the version of this process
    trusted_root: Path  # the root metadata the bundle ships (its release keys)
    _client: Any = field(default=None, repr=False)

    def _new_client(self) -> Any:
        self.layout.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.layout.downloads_dir.mkdir(parents=True, exist_ok=True)
        root = self.layout.metadata_dir / "root.json"
        if not root.exists():
            try:
                shutil.copyfile(self.trusted_root, root)
            except OSError as exc:
                raise UpdateError(f"This installation has no trusted update keys ({exc.strerror or exc}).") from None
        base = self.url.rstrip("/")
        client_class = _tufup_client_class()
        return client_class(app_name=APP_NAME, app_install_dir=self.layout.versions_dir, current_version=self.running,
                            metadata_dir=self.layout.metadata_dir, metadata_base_url=f"{base}/metadata/",
                            target_dir=self.layout.downloads_dir, target_base_url=f"{base}/targets/")

    def check(self) -> CheckOutcome:
        """Refresh the signed metadata and find the newest release; never raises for what the server sends."""
        try:
            client = self._new_client()
            client.refresh()
            meta = client.check_for_updates(patch=True)
        except UpdateError as exc:
            return CheckOutcome(unavailable=str(exc))
        except Exception as exc:
            error = describe_tuf_error(exc)
            log.warning("update check: %s (%s: %s)", error, type(exc).__name__, exc)
            if isinstance(error, UpdateRefused):
                return CheckOutcome(refused=str(error))
            return CheckOutcome(unavailable=str(error))
        self._client = client
        if meta is None:
            log.info("update check: no version newer than %s", self.running)
            return CheckOutcome()
        custom = meta.custom or {}
        notes = custom.get("notes") if isinstance(custom, dict) else None
        info = client.new_archive_info
        offer = Offer(version=str(meta.version), notes=notes if isinstance(notes, str) else "",
                      size=int(getattr(info, "length", 0) or 0))
        log.info("update check: version %s offered (%d bytes)", offer.version, offer.size)
        return CheckOutcome(offer=offer)

    def install(self, offer: Offer) -> None:
        """Download the offered release (verified against the signed metadata), unpack it into versions/<version>/
        and make it current from the next start. UpdateError, with nothing changed, when it cannot."""
        client = self._client
        if client is None:
            raise UpdateError("Check for updates first.")
        installed: list[str] = []
        staging = self.layout.staging_dir / offer.version
        shutil.rmtree(self.layout.staging_dir, ignore_errors=True)
        staging.mkdir(parents=True)
        client.extract_dir = staging

        def move_into_place(src_dir: Path, dst_dir: Path, **_: Any) -> None:
            self._move_into_place(Path(src_dir), offer.version)
            installed.append(offer.version)

        try:
            client.download_and_apply_update(skip_confirmation=True, install=move_into_place)
        except UpdateError:
            raise
        except Exception as exc:
            error = describe_tuf_error(exc)
            log.warning("update %s not installed: %s (%s: %s)", offer.version, error, type(exc).__name__, exc)
            raise error from None
        finally:
            shutil.rmtree(self.layout.staging_dir, ignore_errors=True)
        if not installed:
            raise UpdateError(f"Version {offer.version} could not be unpacked; the version you have is unchanged.")

    def _move_into_place(self, unpacked: Path, version: str) -> None:
        executable = unpacked / self.layout.executable(version).relative_to(self.layout.versions_dir / version)
        if not executable.is_file():
            raise UpdateRefused(f"Version {version}'s archive holds no {executable.name} program; refused. "
                                "Nothing was installed; the version you have is unchanged.")
        target = self.layout.versions_dir / version
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(target)  # an earlier copy (held back, or from a stopped update): replaced whole
        os.replace(unpacked, target)
        state = UpdateState.load(self.layout.state_file)
        state = UpdateState(current=version, previous=self.running, unproven=version,
                            held_back=tuple(v for v in state.held_back if v != version))
        state.save(self.layout.state_file)  # the commit point
        self._prune(keep={version, self.running})
        log.info("update: version %s installed; it runs from the next start (previous %s)", version, self.running)

    def _prune(self, keep: set[str]) -> None:
        """Versions neither current nor previous are removed (the folder holds two bundles at most), and so are
        the archives but the current one's (tufup patches from it to the next)."""
        for folder in self.layout.versions_dir.iterdir():
            if folder.name not in keep and not folder.name.startswith("."):
                shutil.rmtree(folder, ignore_errors=True)
        current = max(keep, key=lambda v: parse_version(v) or Version("0"))
        for archive in self.layout.downloads_dir.glob(f"{APP_NAME}-*"):
            if archive.name != f"{APP_NAME}-{current}.tar.gz":
                archive.unlink(missing_ok=True)


def child_environment(environ: Mapping[str, str], installed: str | None = None,
                      launcher: str | None = None) -> dict[str, str]:
    """The environment for another frozen bundle started from this one: without what PyInstaller's bootloader
    set for this process (its library path and markers), which would confuse the other bundle's."""
    env = {k: v for k, v in environ.items() if not k.startswith("_PYI_") and not k.startswith("_MEI")}
    if "LD_LIBRARY_PATH_ORIG" in env:
        env["LD_LIBRARY_PATH"] = env.pop("LD_LIBRARY_PATH_ORIG")
    elif getattr(sys, "frozen", False):
        env.pop("LD_LIBRARY_PATH", None)
    env["PYINSTALLER_RESET_ENVIRONMENT"] = "1"
    if installed is not None:
        env[LAUNCHED_ENV] = installed
    if launcher is not None:
        env[LAUNCHER_ENV] = launcher
    return env
